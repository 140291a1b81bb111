// Unit tests of the resume option of vars/mlTrainingPipeline.groovy: the Train
// stage runs `mltp resume` (which waits itself) instead of start and wait, or
// instead of `run --local`, against the emulator in mode local.

import groovy.transform.Field

@Field final Map MAIN_INFO = [name: 'fraud-detection', schedule: '', state_machine: 'fraud-detection',
                              register: 'true', retrain: 'false']

test('resume: off by default, Train starts and waits') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(info: MAIN_INFO)
    h.run()
    assert h.helperVerbs() == ['validate', 'publish', 'start', 'wait']
}

test('resume: mode aws resumes instead of start and wait, with the AWS credentials') { PipelineHarness h ->
    h.branch('main', true)
    h.awsCredentials['aws-ml'] = ['AKIAIOSFODNN7EXAMPLE', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY']
    h.fakeHelper(info: MAIN_INFO)
    h.run(resume: true, credentialsId: 'aws-ml')
    assert h.result == 'SUCCESS'
    assert h.helperVerbs() == ['validate', 'publish', 'resume']
    assert h.stageNames() == ['Validate', 'Deploy', 'Train', 'Report']
    Map resumed = h.shFor('resume')
    assert resumed.env.MLTP_VERB == 'resume' && !resumed.env.containsKey('MLTP_LOCAL')
    assert resumed.env.containsKey('MLTP_TIMEOUT')
    assert h.callsOf('withCredentials').size() == 2   // publish and resume
    Script runner = h.loadVar('mltpHelper')
    assert 'resume' in runner.@VERBS
}

test('resume: mode local resumes against the emulator') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(info: MAIN_INFO)
    h.run(mode: 'local', resume: true)
    assert h.result == 'SUCCESS'
    assert h.helperVerbs() == ['validate', 'resume']
    assert h.shFor('resume').env.MLTP_LOCAL == '1'
}

test('resume: not a boolean is refused before anything runs') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(info: MAIN_INFO)
    h.run(resume: 'yes')
    assert h.result == 'FAILURE'
    assert h.helperVerbs() == []
    assert h.logText().contains('resume')
}
