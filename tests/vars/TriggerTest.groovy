// Unit tests of the retrainTrigger option of vars/mlTrainingPipeline.groovy:
// the step installs or updates the retrain-on-new-data trigger (`mltp trigger
// install`, verb trigger-install) on default-branch builds of mode aws, after
// Train, only when asked to and only when the config sets `retrain`.

import groovy.transform.Field

@Field final List TRAIN_VERBS = ['validate', 'publish', 'start', 'wait']
@Field final Map MAIN_INFO = [name: 'fraud-detection', schedule: '', state_machine: 'fraud-detection',
                              register: 'true', retrain: 'true']

test('trigger: off by default, nothing installed even when the config sets retrain') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(info: MAIN_INFO)
    h.run()
    assert h.result == 'SUCCESS'
    assert h.helperVerbs() == TRAIN_VERBS
    assert !h.stageNames().contains('Trigger')
}

test('trigger: retrainTrigger on the default branch installs it after Train, with the AWS credentials') { PipelineHarness h ->
    h.branch('main', true)
    h.awsCredentials['aws-ml'] = ['AKIAIOSFODNN7EXAMPLE', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY']
    h.fakeHelper(info: MAIN_INFO)
    h.run(retrainTrigger: true, credentialsId: 'aws-ml')
    assert h.result == 'SUCCESS'
    assert h.helperVerbs() == TRAIN_VERBS + ['trigger-install']
    assert h.stageNames() == ['Validate', 'Deploy', 'Train', 'Trigger', 'Report']
    Map install = h.shFor('trigger-install')
    assert install.env.MLTP_VERB == 'trigger-install'
    assert !install.env.containsKey('MLTP_TRIGGER_ROLE_ARN')
    assert h.callsOf('withCredentials').size() == 4   // publish, start, wait and trigger-install
    Script runner = h.loadVar('mltpHelper')
    assert install.script == runner.@HELPER_SH
    assert 'trigger-install' in runner.@VERBS
}

test('trigger: triggerRoleArn reaches the helper through the environment only') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(info: MAIN_INFO)
    String role = 'arn:aws:iam::123456789012:role/ml/mltp-trigger-fraud'
    h.run(retrainTrigger: true, triggerRoleArn: role)
    assert h.result == 'SUCCESS'
    Map install = h.shFor('trigger-install')
    assert install.env.MLTP_TRIGGER_ROLE_ARN == role
    assert !install.script.contains(role)
    assert !h.shFor('wait').env.containsKey('MLTP_TRIGGER_ROLE_ARN')
}

test('trigger: not from a feature branch or a pull request') { PipelineHarness h ->
    h.branch('feature/x')
    h.fakeHelper(info: MAIN_INFO + [state_machine: 'fraud-detection--feature-x', register: 'false'])
    h.run(retrainTrigger: true)
    assert h.result == 'SUCCESS'
    assert h.helperVerbs() == TRAIN_VERBS
    assert h.logText().contains('the retrain trigger belongs to the default branch')

    PipelineHarness pr = newHarness()
    pr.pullRequest('7', 'main')
    pr.fakeHelper(info: MAIN_INFO + [register: 'false'])
    pr.run(retrainTrigger: true)
    assert pr.helperVerbs() == TRAIN_VERBS
}

test('trigger: a config without retrain installs nothing, and says so') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(info: MAIN_INFO + [retrain: 'false'])
    h.run(retrainTrigger: true)
    assert h.result == 'SUCCESS'
    assert h.helperVerbs() == TRAIN_VERBS
    assert h.logText().contains('retrainTrigger is on but the config sets no retrain')
}

test('trigger: not in mode local or validate') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(info: MAIN_INFO)
    h.run(retrainTrigger: true, mode: 'local')
    assert h.helperVerbs() == ['validate', 'run']

    PipelineHarness v = newHarness()
    v.branch('main', true)
    v.fakeHelper(info: MAIN_INFO)
    v.run(retrainTrigger: true, mode: 'validate')
    assert v.helperVerbs() == ['validate']
}

test('trigger: a failed training installs nothing') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(info: MAIN_INFO, rc: [wait: 4], errors: [wait: 'run failed at Training'])
    h.run(retrainTrigger: true)
    assert h.result == 'FAILURE'
    assert h.helperVerbs() == TRAIN_VERBS
}

test('trigger: an install failure fails the build with the helper reason') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(info: MAIN_INFO, rc: ['trigger-install': 5],
                 errors: ['trigger-install': 'trigger function mltp-trigger-fraud-detection: AWS refused: AccessDenied'])
    h.run(retrainTrigger: true)
    assert h.result == 'FAILURE'
    assert h.thrown.message == '[mlTrainingPipeline] trigger function mltp-trigger-fraud-detection: AWS refused: AccessDenied'
    assert h.stageNames().contains('Report')
}

test('trigger: bad option values are refused up front') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(info: MAIN_INFO)
    h.run(retrainTrigger: 'yes', triggerRoleArn: 'mltp-trigger')
    assert h.result == 'FAILURE'
    assert h.thrown.message.contains("retrainTrigger must be true or false, not 'yes'")
    assert h.thrown.message.contains("triggerRoleArn 'mltp-trigger' is not an IAM role ARN")
    assert h.helperVerbs().isEmpty()
}
