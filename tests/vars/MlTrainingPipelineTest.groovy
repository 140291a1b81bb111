// Unit tests of vars/mlTrainingPipeline.groovy, run by tests/vars/run.sh.
// They assert on the steps the build called (sh scripts and their environment,
// credentials, node labels, job properties, results), including what must NOT happen.

import groovy.transform.Field
import org.jenkinsci.plugins.workflow.steps.FlowInterruptedException

@Field final String SECRET_KEY = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY'
@Field final String ACCESS_KEY = 'AKIAIOSFODNN7EXAMPLE'
@Field final String GATE_REASON = 'auc 0.8120 < min 0.90; false_positive_rate 0.031 <= max 0.05'
@Field final List ALL_VERBS = ['validate', 'publish', 'start', 'wait']

// The sh scripts the step may run: the shared runner's constants, nothing built at run time.
List constantScripts(PipelineHarness h) {
    Script s = h.loadVar('mltpHelper')
    return [s.@HELPER_SH, s.@INSTALL_SH]
}

void assertOnlyConstantScripts(PipelineHarness h) {
    List allowed = constantScripts(h)
    h.shScripts().each { String script -> assert script in allowed }
}

void assertNowhere(PipelineHarness h, String text) {
    h.allText().each { String t -> assert !t.contains(text) }
}

Map withAwsCredentials(PipelineHarness h) {
    h.awsCredentials['aws-ml'] = [ACCESS_KEY, SECRET_KEY]
    return [credentialsId: 'aws-ml']
}

// ------------------------------------------------------------------ default path

test('default branch: schedule trigger, validate/sync/deploy/start/wait, report, SUCCESS') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper()
    h.run()

    assert h.result == 'SUCCESS'
    assert h.thrown == null
    assert h.helperVerbs() == ALL_VERBS
    assert h.stageNames() == ['Validate', 'Deploy', 'Train', 'Report']
    assert h.triggers() == [[type: 'cron', spec: 'H 3 * * 1']]
    Map concurrency = h.jobProperties.find { it.type == 'disableConcurrentBuilds' }
    assert concurrency.abortPrevious == true
    Map discarder = h.jobProperties.find { it.type == 'buildDiscarder' }
    assert discarder.strategy.numToKeepStr == '30'
    assert h.callsOf('timeout')[0].args[0] == [time: 180, unit: 'MINUTES']
    assert h.callsOf('node')[0].args == []          // any agent
    assert h.callsOf('withCredentials').isEmpty()   // no credentialsId: the agent's own role

    Map archive = h.callsOf('archiveArtifacts')[0]
    assert archive.args[0] == [artifacts: '.mltp/report/**', excludes: '.mltp/report/**/*.tar.gz', allowEmptyArchive: true]
    assert archive.archived == ['.mltp/report/junit.xml', '.mltp/report/outcome.txt', '.mltp/report/report.md', '.mltp/report/summary.txt']
    assert h.callsOf('junit')[0].args[0] == [testResults: '.mltp/report/junit.xml', allowEmptyResults: true]
    assert h.currentBuild.description == 'fraud-detection: gate passed (auc 0.941 &gt;= 0.90), registered version 3'

    // order: checkout, install, helper verbs, then the report
    List steps = h.stepNames()
    assert steps.indexOf('checkout') < steps.indexOf('sh')
    assert h.shCalls()[0].is(h.installCall())
    assert steps.lastIndexOf('sh') < steps.indexOf('archiveArtifacts')
    assert steps.indexOf('archiveArtifacts') < steps.indexOf('junit')
    assert h.callsOf('properties').size() == 1
    assert h.callsOf('properties')[0].stage == 'Validate'
    assertOnlyConstantScripts(h)
}

test('the helper gets its options through the environment only') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper()
    h.run(region: 'eu-west-1')

    Map install = h.shCalls()[0]
    String bundle = h.workspaceTmp.path + '/mltp/bundle/'
    assert install.env.MLTP_INSTALL_PYTHON == 'python3'
    assert install.env.MLTP_INSTALL_WHEEL == bundle + PipelineHarness.FAKE_WHEEL
    assert install.env.MLTP_INSTALL_REQUIREMENTS == bundle + 'requirements-aws.txt'   // mode aws: no emulator
    assert install.env.MLTP_INSTALL_SH == bundle + 'install.sh'
    assert install.env.MLTP_INSTALL_VERIFIER == bundle + 'verify-helper.py'
    assert h.file(install.env.MLTP_INSTALL_WHEEL).text == 'PK not a real wheel'
    assert h.file(install.env.MLTP_INSTALL_REQUIREMENTS).text.startsWith('pyyaml==6.0.2 --hash=sha256:')
    // the scripts on the agent are the library's files, byte for byte
    assert h.file(install.env.MLTP_INSTALL_SH).text == new File(ROOT, 'resources/mltp/install.sh').text
    assert h.file(install.env.MLTP_INSTALL_VERIFIER).text == new File(ROOT, 'resources/mltp/verify-helper.py').text
    assert h.file(h.shFor('wait').env.MLTP_HELPER_SH).text == new File(ROOT, 'resources/mltp/helper.sh').text
    assert h.callsOf('libraryResource').collect { it.args[0] } ==
           ['mltp/helper.sh', 'mltp/install.sh', 'mltp/bundle.txt',
            [resource: 'mltp/' + PipelineHarness.FAKE_WHEEL, encoding: 'Base64'], 'mltp/requirements-aws.txt',
            'mltp/verify-helper.py']

    Map wait = h.shFor('wait')
    Map mltpVars = wait.env.findAll { k, v -> k.startsWith('MLTP') }
    assert mltpVars.keySet() == ['MLTP', 'MLTP_HELPER_SH', 'MLTP_VERB', 'MLTP_REPO', 'MLTP_CONFIG', 'MLTP_REPORT_DIR',
                                 'MLTP_ERROR_FILE', 'MLTP_INFO_FILE', 'MLTP_REGION', 'MLTP_TIMEOUT', 'MLTP_CACHE_DIR'] as Set
    assert wait.env.MLTP_VERB == 'wait'
    assert wait.env.MLTP == new File(h.sandbox, 'cache/venv-0123/bin/mltp').path
    assert wait.env.MLTP_REPO == h.workspace.path
    assert wait.env.MLTP_CONFIG == 'config.yaml'
    assert wait.env.MLTP_REPORT_DIR == h.workspace.path + '/.mltp/report'
    assert wait.env.MLTP_ERROR_FILE == h.workspaceTmp.path + '/mltp/error.txt'
    assert wait.env.MLTP_INFO_FILE == h.workspaceTmp.path + '/mltp/info.txt'
    assert wait.env.MLTP_REGION == 'eu-west-1'
    assert (wait.env.MLTP_TIMEOUT as int) in 1..179
    assert wait.env.PYTHONUNBUFFERED == '1'
    assert wait.env.GIT_COMMIT == h.scmVars.GIT_COMMIT      // checkout's result, exported for the helper
    assert wait.env.BUILD_TAG == 'jenkins-ml-pipeline-main-7'
    assert !h.shFor('validate').env.containsKey('MLTP_TIMEOUT')
    h.shCalls().each { Map c -> assert c.args[0].returnStatus == true }
}

test('GIT_COMMIT already in the environment is left alone') { PipelineHarness h ->
    h.env.GIT_COMMIT = 'feedfacefeedfacefeedfacefeedfacefeedface'
    h.fakeHelper()
    h.run()
    assert h.shFor('wait').env.GIT_COMMIT == 'feedfacefeedfacefeedfacefeedfacefeedface'
    assert !h.shFor('wait').withEnv.any { it.startsWith('GIT_COMMIT=') }
}

test('agent label and region options reach node and the helper') { PipelineHarness h ->
    h.fakeHelper()
    h.run(agent: 'linux && ml', region: 'ap-northeast-2')
    assert h.callsOf('node')[0].args == ['linux && ml']
    assert h.shFor('publish').env.MLTP_REGION == 'ap-northeast-2'
}

test('preflight: on by default; preflight: false tells the helper to skip it') { PipelineHarness h ->
    h.fakeHelper()
    h.run()
    assert !h.shFor('publish').env.containsKey('MLTP_NO_PREFLIGHT')
    PipelineHarness off = newHarness()
    off.fakeHelper()
    off.run(preflight: false)
    assert off.result == 'SUCCESS'
    assert off.shFor('publish').env.MLTP_NO_PREFLIGHT == '1'
    assert off.shFor('publish').withEnv.contains('MLTP_NO_PREFLIGHT=1')
    PipelineHarness bad = newHarness()
    bad.run(preflight: 'no')
    assert bad.result == 'FAILURE'
    assert bad.errors()[0].contains("preflight must be true or false, not 'no'")
}

// ------------------------------------------------------------------ branches

test('pull request: no cron trigger, still trains, nothing forces registration') { PipelineHarness h ->
    h.pullRequest('42')
    h.fakeHelper(info: [name: 'fraud-detection', schedule: 'H 3 * * 1', state_machine: 'fraud-detection--pr-42', register: 'false'])
    h.run()

    assert h.result == 'SUCCESS'
    assert h.triggers() == []
    assert h.jobProperties != null               // concurrency and discarder still set
    assert h.helperVerbs() == ALL_VERBS
    Map wait = h.shFor('wait')
    assert wait.env.CHANGE_ID == '42'            // Jenkins' own variable, passed through untouched
    assert !wait.env.containsKey('MLTP_DEFAULT_BRANCH')
    assert !wait.env.containsKey('MLTP_RUN_NAME')
    h.shCalls().each { Map c ->
        assert !c.withEnv.any { it.toLowerCase().contains('regist') || it.startsWith('BRANCH') || it.startsWith('CHANGE') }
        assert !c.script.toLowerCase().contains('regist')
    }
    assertOnlyConstantScripts(h)
}

test('pull request with defaultBranch naming its target: still no trigger') { PipelineHarness h ->
    h.pullRequest('43', 'main')
    h.fakeHelper()
    h.run(defaultBranch: 'PR-43')
    assert h.result == 'SUCCESS'
    assert h.triggers() == []
}

test('feature branch: trains, no trigger') { PipelineHarness h ->
    h.branch('feature/better-features')
    h.fakeHelper(info: [name: 'fraud-detection', schedule: 'H 3 * * 1', state_machine: 'fraud-detection--feature-better-features', register: 'false'])
    h.run()
    assert h.result == 'SUCCESS'
    assert h.helperVerbs() == ALL_VERBS
    assert h.triggers() == []
    assert h.logText().contains('the schedule applies to the default branch only')
}

test('defaultBranch option decides the default branch and is passed to the helper') { PipelineHarness h ->
    h.branch('develop')
    h.fakeHelper()
    h.run(defaultBranch: 'develop')
    assert h.triggers() == [[type: 'cron', spec: 'H 3 * * 1']]
    assert h.shFor('validate').env.MLTP_DEFAULT_BRANCH == 'develop'

    PipelineHarness primary = newHarness()
    primary.branch('main', true)
    primary.fakeHelper()
    primary.run(defaultBranch: 'develop')
    assert primary.triggers() == []
}

test('the helper\'s register verdict decides the schedule (main without BRANCH_IS_PRIMARY)') { PipelineHarness h ->
    h.branch('main')                          // a branch source that sets no BRANCH_IS_PRIMARY
    h.fakeHelper()
    h.run()
    assert h.triggers() == [[type: 'cron', spec: 'H 3 * * 1']]

    PipelineHarness no = newHarness()
    no.branch('main', true)
    no.fakeHelper(info: [name: 'fraud-detection', schedule: 'H 3 * * 1', register: 'false'])
    no.run()
    assert no.triggers() == []
}

test('without a register verdict nothing is scheduled: the step has no rule of its own') { PipelineHarness h ->
    Map info = [name: 'fraud-detection', schedule: 'H 3 * * 1']
    h.branch('main', true)
    h.fakeHelper(info: info)
    h.run()
    assert h.result == 'SUCCESS'
    assert h.triggers() == []
    assert h.logText().contains('the schedule applies to the default branch only; not scheduling this branch')

    PipelineHarness named = newHarness()
    named.branch('develop')
    named.fakeHelper(info: info)
    named.run(defaultBranch: 'develop')
    assert named.triggers() == []

    PipelineHarness single = newHarness()      // not multibranch: still the helper's word only
    single.fakeHelper(info: info)
    single.run()
    assert single.triggers() == []

    PipelineHarness verdict = newHarness()
    verdict.branch('feature/x')
    verdict.fakeHelper(info: info + [register: 'true'])
    verdict.run()
    assert verdict.triggers() == [[type: 'cron', spec: 'H 3 * * 1']]

    PipelineHarness pr = newHarness()
    pr.pullRequest('9')
    pr.fakeHelper(info: info + [register: 'true'])   // even a confused helper cannot schedule a PR
    pr.run()
    assert pr.triggers() == []
}

test('a single-branch (not multibranch) job counts as the default branch') { PipelineHarness h ->
    h.fakeHelper()
    h.run()
    assert !h.env.containsKey('BRANCH_NAME')
    assert h.triggers() == [[type: 'cron', spec: 'H 3 * * 1']]
}

test('no schedule in the config: no trigger, and a previous one is dropped') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(info: [name: 'fraud-detection', schedule: '', state_machine: 'fraud-detection', register: 'true'])
    h.run()
    assert h.result == 'SUCCESS'
    assert h.callsOf('properties').size() == 1
    assert h.triggers() == []
    assert !h.jobProperties.any { it.type == 'pipelineTriggers' }
}

// ------------------------------------------------------------------ gate and failures

test('gate failure with onGateFailure FAILURE: one error line, report still published') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(rc: [wait: 3], errors: [wait: GATE_REASON], summary: 'fraud-detection: gate failed (auc 0.812 < 0.90)')
    h.run()

    assert h.result == 'FAILURE'
    assert h.errors() == ['[mlTrainingPipeline] metric gate failed: ' + GATE_REASON]
    assert h.thrown.message == '[mlTrainingPipeline] metric gate failed: ' + GATE_REASON
    assert h.callsOf('unstable').isEmpty()
    assert h.stageNames() == ['Validate', 'Deploy', 'Train', 'Report']
    assert h.callsOf('archiveArtifacts').size() == 1
    assert h.callsOf('junit').size() == 1
    assert h.currentBuild.description == 'fraud-detection: gate failed (auc 0.812 &lt; 0.90)'
}

test('gate failure with onGateFailure UNSTABLE: build UNSTABLE, no error') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(rc: [wait: 3], errors: [wait: GATE_REASON])
    h.run(onGateFailure: 'UNSTABLE')

    assert h.result == 'UNSTABLE'
    assert h.thrown == null
    assert h.errors().isEmpty()
    assert h.callsOf('unstable').collect { it.args[0] } == ['[mlTrainingPipeline] metric gate failed: ' + GATE_REASON]
    assert h.stageNames() == ['Validate', 'Deploy', 'Train', 'Report']
    assert h.callsOf('junit').size() == 1
}

test('gate failure UNSTABLE without the unstable step (old Jenkins): result still UNSTABLE') { PipelineHarness h ->
    h.missingSteps << 'unstable'
    h.fakeHelper(rc: [wait: 3], errors: [wait: 'metric gate failed: auc 0.81 < 0.90'])
    h.run(onGateFailure: 'unstable')
    assert h.result == 'UNSTABLE'
    assert h.logText().contains('[mlTrainingPipeline] metric gate failed: auc 0.81 < 0.90')
    assert !h.logText().contains('metric gate failed: metric gate failed')
}

test('invalid config: FAILURE with the reason, nothing sent to AWS') { PipelineHarness h ->
    String reason = "config.yaml:14: gate[0].mni: unknown key (did you mean 'min'?)"
    h.branch('main', true)
    Map options = withAwsCredentials(h)
    h.fakeHelper(rc: [validate: 2], errors: [validate: reason])
    h.run(options)

    assert h.result == 'FAILURE'
    assert h.errors() == ['[mlTrainingPipeline] ' + reason]
    assert h.logText().count(reason) == 1
    assert h.helperVerbs() == ['validate']
    h.shScripts().each { String s -> assert !(s =~ ~'"\\$MLTP" (sync|deploy|start|wait|run)') }
    assert h.stageNames() == ['Validate']
    assert h.callsOf('withCredentials').isEmpty()
    assert h.callsOf('archiveArtifacts').isEmpty()
    assert h.callsOf('properties').isEmpty()       // an invalid config does not change the job
}

test('a committed .mltp symlink: validate refuses it before anything is deleted') { PipelineHarness h ->
    String reason = '.mltp: is a symlink; mltp writes its run folders there, so it must be a plain folder or absent (remove it from the repo)'
    h.fakeHelper(rc: [validate: 2], errors: [validate: reason])
    h.run()
    assert h.result == 'FAILURE'
    assert h.errors() == ['[mlTrainingPipeline] ' + reason]
    assert h.callsOf('deleteDir').isEmpty()
    assert h.helperVerbs() == ['validate']
}

test('the report folder is emptied after validate, before sync') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper()
    h.run()
    assert h.callsOf('deleteDir').size() == 1
    assert h.result == 'SUCCESS'
}

test('a failure without an error file still gives one clear line') { PipelineHarness h ->
    h.fakeHelper(rc: [validate: 2])
    h.run()
    assert h.result == 'FAILURE'
    assert h.errors() == ['[mlTrainingPipeline] mltp validate failed with exit code 2 (invalid input); see the log above']
}

test('AWS refused during deploy: FAILURE with the reason, no run started') { PipelineHarness h ->
    String reason = 'AccessDeniedException: not authorized to perform states:CreateStateMachine (check the Jenkins role)'
    h.fakeHelper(rc: [publish: 5], errors: [publish: reason])
    h.run()
    assert h.result == 'FAILURE'
    assert h.errors() == ['[mlTrainingPipeline] ' + reason]
    assert h.helperVerbs() == ['validate', 'publish']
    assert h.stageNames() == ['Validate', 'Deploy']
}

test('run failed during wait: FAILURE with the reason, report published') { PipelineHarness h ->
    String reason = 'Training failed: AlgorithmError: ExecuteUserScriptError (see the training job log)'
    h.fakeHelper(rc: [wait: 4], errors: [wait: reason])
    h.run()
    assert h.result == 'FAILURE'
    assert h.errors() == ['[mlTrainingPipeline] ' + reason]
    assert h.callsOf('archiveArtifacts')[0].archived.size() == 4
}

test('start failing skips wait') { PipelineHarness h ->
    h.fakeHelper(rc: [start: 5], errors: [start: '[mlTrainingPipeline] throttled beyond retries'])
    h.run()
    assert h.result == 'FAILURE'
    assert h.errors() == ['[mlTrainingPipeline] throttled beyond retries']
    assert h.helperVerbs() == ['validate', 'publish', 'start']
    assert h.stageNames().contains('Report')
}

test('a helper bug (exit 1) without a reason names the verb and the code') { PipelineHarness h ->
    h.fakeHelper(rc: [publish: 1])
    h.run()
    assert h.errors() == ['[mlTrainingPipeline] mltp publish failed with exit code 1 (the mltp helper hit an internal error); see the log above']
}

// ------------------------------------------------------------------ abort and timeout

test('abort during wait: execution stopped, original exception rethrown, ABORTED') { PipelineHarness h ->
    Map options = withAwsCredentials(h)
    FlowInterruptedException abort = new FlowInterruptedException()
    h.fakeHelper(actions: [wait: { throw abort }])
    h.run(options)

    assert h.result == 'ABORTED'
    assert h.thrown.is(abort)
    assert h.helperVerbs() == ALL_VERBS + ['stop']
    Map stop = h.shFor('stop')
    assert stop.credentials == ['aws-ml']
    assert stop.env.AWS_SECRET_ACCESS_KEY == SECRET_KEY
    assert stop.withEnv - 'MLTP_VERB=stop' == h.shFor('wait').withEnv - 'MLTP_VERB=wait'
    assert stop.env.MLTP_VERB == 'stop'
    assert h.errors().isEmpty()
    assert h.stageNames() == ['Validate', 'Deploy', 'Train', 'Report']
    assert h.stepNames().lastIndexOf('sh') < h.stepNames().indexOf('archiveArtifacts')
}

test('timeout firing during wait: stop, then the timeout exception unchanged') { PipelineHarness h ->
    FlowInterruptedException timedOut = new FlowInterruptedException('ABORTED', 'Timeout has been exceeded')
    h.fakeHelper(actions: [wait: { throw timedOut }])
    h.run(timeoutMinutes: 60)
    assert h.result == 'ABORTED'
    assert h.thrown.is(timedOut)
    assert h.helperVerbs() == ALL_VERBS + ['stop']
}

test('abort during start also stops; a plain InterruptedException counts too') { PipelineHarness h ->
    InterruptedException interrupted = new InterruptedException('sleep interrupted')
    h.fakeHelper(actions: [start: { throw interrupted }])
    h.run()
    assert h.thrown.is(interrupted)
    assert h.helperVerbs() == ['validate', 'publish', 'start', 'stop']
}

test('stop failing does not hide the abort') { PipelineHarness h ->
    FlowInterruptedException abort = new FlowInterruptedException()
    h.fakeHelper(actions: [wait: { throw abort }, stop: { throw new FlowInterruptedException() }])
    h.run()
    assert h.thrown.is(abort)
    assert h.result == 'ABORTED'

    PipelineHarness h2 = newHarness()
    FlowInterruptedException abort2 = new FlowInterruptedException()
    h2.fakeHelper(actions: [wait: { throw abort2 }], rc: [stop: 5], errors: [stop: 'ExecutionDoesNotExist'])
    h2.run()
    assert h2.thrown.is(abort2)
    assert h2.logText().contains('mltp stop failed: ExecutionDoesNotExist')
}

test('abort before a run exists (deploy): no stop') { PipelineHarness h ->
    FlowInterruptedException abort = new FlowInterruptedException()
    h.fakeHelper(actions: [publish: { throw abort }])
    h.run()
    assert h.thrown.is(abort)
    assert h.result == 'ABORTED'
    assert h.helperVerbs() == ['validate', 'publish']
    assert !h.stageNames().contains('Report')
}

// ------------------------------------------------------------------ credentials and hostile values

test('credentials: bound by id only around AWS calls, the secret nowhere in text') { PipelineHarness h ->
    h.branch('main', true)
    Map options = withAwsCredentials(h)
    h.fakeHelper(rc: [wait: 5], errors: [wait: 'ExpiredTokenException: the security token included in the request is expired'])
    h.run(options)

    assert h.result == 'FAILURE'
    List bindings = h.callsOf('withCredentials').collect { it.args[0] }
    assert bindings.size() == 3        // publish (sync + deploy), start and wait, each on its own
    bindings.each { List b ->
        assert b == [[$class: 'AmazonWebServicesCredentialsBinding', credentialsId: 'aws-ml',
                      accessKeyVariable: 'AWS_ACCESS_KEY_ID', secretKeyVariable: 'AWS_SECRET_ACCESS_KEY']]
    }
    ['publish', 'start', 'wait'].each { String verb ->
        Map c = h.shFor(verb)
        assert c.credentials == ['aws-ml']
        assert c.env.AWS_ACCESS_KEY_ID == ACCESS_KEY
        assert c.env.AWS_SECRET_ACCESS_KEY == SECRET_KEY
    }
    assert h.shFor('validate').credentials == []      // validate sends nothing to AWS
    assert h.shCalls()[0].credentials == []           // nor does the install
    assertNowhere(h, SECRET_KEY)
    assertNowhere(h, ACCESS_KEY)
}

test('hostile config path and branch name only ever travel in withEnv values') { PipelineHarness h ->
    String config = 'my dir/it\'s "cfg".yaml'
    String branch = 'feat/$(touch /tmp/pwned)`touch /tmp/pwned2`'
    String defaultBranch = 'x$(touch /tmp/pwned3)`id`;rm -rf ~'
    h.branch(branch)
    h.fakeHelper()
    h.run(config: config, defaultBranch: defaultBranch, python: '/opt/py $(id)/bin/python3')

    assert h.result == 'SUCCESS'
    assertOnlyConstantScripts(h)
    h.shScripts().each { String s ->
        assert !s.contains('pwned') && !s.contains('cfg') && !s.contains('$(id)') && !s.contains('my dir')
    }
    Map validate = h.shFor('validate')
    assert validate.withEnv.contains('MLTP_CONFIG=' + config)
    assert validate.withEnv.contains('MLTP_DEFAULT_BRANCH=' + defaultBranch)
    assert validate.env.MLTP_CONFIG == config
    assert validate.env.BRANCH_NAME == branch
    assert h.shCalls()[0].env.MLTP_INSTALL_PYTHON == '/opt/py $(id)/bin/python3'
}

test('real sh: hostile values reach the helper intact and run nothing') { PipelineHarness h ->
    h.realSh = true
    File seen = new File(h.sandbox, 'seen')
    File mark = new File(h.sandbox, 'pwned')
    File helper = new File(h.sandbox, 'bin/fake mltp')
    helper.parentFile.mkdirs()
    helper.text = '''#!/bin/sh
mkdir -p "$SEEN"
printf '%s' "$1" > "$SEEN/verb"
printf '%s' "$2" > "$SEEN/repo"
printf '%s' "$MLTP_CONFIG" > "$SEEN/config"
printf '%s' "$MLTP_DEFAULT_BRANCH" > "$SEEN/default_branch"
printf '%s' "$BRANCH_NAME" > "$SEEN/branch"
printf 'name=fraud-detection\\nschedule=H 4 * * *\\n' > "$MLTP_INFO_FILE"
'''
    helper.setExecutable(true)
    String config = 'my dir/it\'s "cfg".yaml; $(touch ' + mark.path + ')'
    String branch = 'feat/`touch ' + mark.path + '`$(touch ' + mark.path + ')'
    String defaultBranch = '"; touch ' + mark.path + '; echo "'
    h.env.SEEN = seen.path
    h.branch(branch)
    h.run(mode: 'validate', helperCommand: helper.path, config: config, defaultBranch: defaultBranch)

    assert h.result == 'SUCCESS'
    assert h.shCalls().size() == 1 && h.shCalls()[0].rc == 0
    assert new File(seen, 'verb').text == 'validate'
    assert new File(seen, 'repo').text == h.workspace.path
    assert new File(seen, 'config').text == config
    assert new File(seen, 'default_branch').text == defaultBranch
    assert new File(seen, 'branch').text == branch
    assert !mark.exists()
    assert h.triggers() == []               // validate mode never schedules
}

test('real sh: the error file becomes the one failure line') { PipelineHarness h ->
    h.realSh = true
    File helper = new File(h.sandbox, 'mltp')
    helper.text = '''#!/bin/sh
printf '%s\\n' "config.yaml:3: name: 'My Model' must match [a-z0-9-]" "second line" > "$MLTP_ERROR_FILE"
exit 2
'''
    helper.setExecutable(true)
    h.run(helperCommand: helper.path)
    assert h.result == 'FAILURE'
    assert h.errors() == ["[mlTrainingPipeline] config.yaml:3: name: 'My Model' must match [a-z0-9-]"]
}

// ------------------------------------------------------------------ modes and helper installation

test('mode validate: only Validate, no credentials, no trigger, no report') { PipelineHarness h ->
    h.branch('main', true)
    Map options = withAwsCredentials(h) + [mode: 'validate']
    h.fakeHelper()
    h.run(options)
    assert h.result == 'SUCCESS'
    assert h.helperVerbs() == ['validate']
    assert h.stageNames() == ['Validate']
    assert h.callsOf('withCredentials').isEmpty()
    assert h.triggers() == []
    assert h.callsOf('archiveArtifacts').isEmpty() && h.callsOf('junit').isEmpty()
}

test('mode local: validate then run --local in one process, no AWS credentials') { PipelineHarness h ->
    h.branch('main', true)
    Map options = withAwsCredentials(h) + [mode: 'local']
    h.fakeHelper()
    h.run(options)
    assert h.result == 'SUCCESS'
    assert h.helperVerbs() == ['validate', 'run']
    assert h.shFor('run').env.MLTP_VERB == 'run'
    assert new File(ROOT, 'resources/mltp/helper.sh').text.contains('run) exec "$MLTP" run --local "$MLTP_REPO" ;;')
    assert h.installCall().env.MLTP_INSTALL_REQUIREMENTS.endsWith('/requirements-local.txt')   // the emulator
    assert h.stageNames() == ['Validate', 'Train', 'Report']
    assert h.callsOf('withCredentials').isEmpty()
    assert h.currentBuild.description
    assert h.shFor('run').env.MLTP_TIMEOUT
    assert !h.shFor('run').env.containsKey('MLTP_PYTHON')   // the helper builds the local environments by default
}

test('mode local without scriptPython: the helper builds the environments, and the docs say so') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper()
    h.run(mode: 'local')
    assert h.result == 'SUCCESS'
    assert !h.shFor('run').env.containsKey('MLTP_PYTHON')
    assert !h.shFor('run').withEnv.any { it.startsWith('MLTP_PYTHON=') }
    String help = new File(ROOT, 'vars/mlTrainingPipeline.txt').text
    assert help.contains('<code>scriptPython</code> (default <code>null</code>: a local environment per framework)')
    assert help.contains('only\n      <code>python3</code>')
    assert h.loadVar('mltpHelper').@OPTIONS.scriptPython.doc.contains('null = the helper builds a cached virtualenv per framework')
}

test('mode local: scriptPython reaches the helper as MLTP_PYTHON, never in shell text') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper()
    h.run(mode: 'local', scriptPython: '/opt/ml env/bin/python3')
    assert h.result == 'SUCCESS'
    assert h.shFor('run').env.MLTP_PYTHON == '/opt/ml env/bin/python3'
    assert h.shFor('run').withEnv.contains('MLTP_PYTHON=/opt/ml env/bin/python3')
    assert !h.shScripts().any { it.contains('/opt/ml env') }
}

test('mode local: allowNearest reaches the helper as MLTP_ALLOW_NEAREST=1; unset, nothing is passed') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper()
    h.run(mode: 'local', allowNearest: true)
    assert h.result == 'SUCCESS'
    assert h.shFor('run').env.MLTP_ALLOW_NEAREST == '1'
    assert h.shFor('run').withEnv.contains('MLTP_ALLOW_NEAREST=1')
    assert h.loadVar('mltpHelper').@OPTIONS.allowNearest.doc.contains('use the nearest that installs instead of failing')
    assert new File(ROOT, 'vars/mlTrainingPipeline.txt').text.contains('<code>allowNearest</code> (default <code>false</code>)')

    PipelineHarness h2 = newHarness()
    h2.branch('main', true)
    h2.fakeHelper()
    h2.run(mode: 'local')
    assert h2.result == 'SUCCESS'
    assert !h2.shFor('run').env.containsKey('MLTP_ALLOW_NEAREST')
}

test('mode local: gate failure and abort (no stop: nothing runs on AWS)') { PipelineHarness h ->
    h.fakeHelper(rc: [run: 3], errors: [run: GATE_REASON])
    h.run(mode: 'local', onGateFailure: 'UNSTABLE')
    assert h.result == 'UNSTABLE'

    PipelineHarness h2 = newHarness()
    FlowInterruptedException abort = new FlowInterruptedException()
    h2.fakeHelper(actions: [run: { throw abort }])
    h2.run(mode: 'local')
    assert h2.thrown.is(abort)
    assert h2.helperVerbs() == ['validate', 'run']
}

test('helperCommand: nothing installed, the command used as is') { PipelineHarness h ->
    h.fakeHelper()
    h.run(helperCommand: '/opt/mltp/bin/mltp')
    assert h.result == 'SUCCESS'
    assert h.callsOf('libraryResource').collect { it.args[0] } == ['mltp/helper.sh']
    assert h.installCall() == null
    assert !h.callsOf('writeFile').any { it.args[0].file.contains('bundle') }
    assert h.helperVerbs() == ALL_VERBS
    h.shCalls().each { assert it.env.MLTP == '/opt/mltp/bin/mltp' }
}

test('helperPipSpec: installs the spec, not the bundled wheel') { PipelineHarness h ->
    h.fakeHelper()
    h.run(helperPipSpec: 'mltp==0.1.0')
    assert h.result == 'SUCCESS'
    assert h.callsOf('libraryResource').collect { it.args[0] } == ['mltp/helper.sh', 'mltp/install.sh']
    Map install = h.shCalls()[0]
    assert install.env.MLTP_INSTALL_PIP_SPEC == 'mltp==0.1.0'
    assert !install.env.containsKey('MLTP_INSTALL_WHEEL')
}

test('the install script is the same constant text in every build') { PipelineHarness h ->
    h.fakeHelper()
    h.run()
    PipelineHarness other = newHarness()
    other.branch('feature/x')
    other.fakeHelper()
    other.run(config: 'models/a b/config.yaml', python: '/usr/local/bin/python3.11', region: 'us-east-1')
    PipelineHarness pip = newHarness()
    pip.fakeHelper()
    pip.run(helperPipSpec: 'mltp==9.9.9')

    String install = h.shScripts()[0]
    assert install == h.loadVar('mltpHelper').@INSTALL_SH
    assert other.shScripts()[0] == install
    assert pip.shScripts()[0] == install
    assert install.startsWith('#!/bin/sh\n')
    [PipelineHarness.FAKE_WHEEL, h.workspaceTmp.path, 'python3.11', '9.9.9', h.sandbox.path].each { String v ->
        assert !install.contains(v)
    }
    assert h.shScripts().drop(1) == other.shScripts().drop(1)    // helper calls too
}

test('real sh: the bundled wheel installs once into a cached venv; the next build installs nothing') { PipelineHarness h ->
    File wheelDir = new File(h.sandbox, 'wheel')
    String wheelName = 'mltp-0.0.1-py3-none-any.whl'
    File wheel = new File(wheelDir, wheelName)
    wheelDir.mkdirs()
    Map files = [
        'mltp/__init__.py'                  : '',
        'mltp/cli.py'                       : 'import os, sys\n\ndef main():\n    print("fake mltp", sys.argv[1])\n    return 0\n',
        'mltp-0.0.1.dist-info/METADATA'     : 'Metadata-Version: 2.1\nName: mltp\nVersion: 0.0.1\n',
        'mltp-0.0.1.dist-info/WHEEL'        : 'Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n',
        'mltp-0.0.1.dist-info/entry_points.txt': '[console_scripts]\nmltp = mltp.cli:main\n',
    ]
    files['mltp-0.0.1.dist-info/RECORD'] = (files.keySet() + ['mltp-0.0.1.dist-info/RECORD']).collect { it + ',,' }.join('\n') + '\n'
    wheel.withOutputStream { OutputStream out ->
        java.util.zip.ZipOutputStream zip = new java.util.zip.ZipOutputStream(out)
        files.each { String name, String text ->
            zip.putNextEntry(new java.util.zip.ZipEntry(name))
            zip.write(text.getBytes('UTF-8'))
            zip.closeEntry()
        }
        zip.close()
    }
    Closure bundle = { PipelineHarness x ->
        x.realSh = true
        x.env.MLTP_CACHE_DIR = new File(h.sandbox, 'shared-cache').path
        x.resources['mltp/bundle.txt'] = wheelName + '\n'
        x.resources['mltp/' + wheelName] = wheel.bytes
        x.resources['mltp/requirements-aws.txt'] = '# no dependencies\n'
    }
    bundle(h)
    h.run(mode: 'validate')
    assert h.result == 'SUCCESS'
    assert h.logText().contains('mltp helper: installing into')
    assert h.logText().contains('fake mltp validate')
    String mltp = h.shFor('validate').env.MLTP
    assert mltp ==~ /.*\/shared-cache\/venv-[0-9a-f]{24}\/bin\/mltp/
    File link = new File(mltp).parentFile.parentFile
    assert java.nio.file.Files.isSymbolicLink(link.toPath())

    PipelineHarness second = newHarness()
    bundle(second)
    second.run(mode: 'validate')
    assert second.result == 'SUCCESS'
    assert second.logText().contains('mltp helper: cached in')
    assert !second.logText().contains('installing')
    assert second.shFor('validate').env.MLTP == mltp
    assert second.shScripts()[0] == h.shScripts()[0]
    assert new File(h.sandbox, 'shared-cache').list().findAll { it.startsWith('build-') }.size() == 1
}

test('install failure: one line with the installer\'s reason, nothing else runs') { PipelineHarness h ->
    h.fakeHelper(installRc: 2, installError: "'python3' is older than Python 3.9, which the mltp helper needs (the python option)")
    h.run()
    assert h.result == 'FAILURE'
    assert h.errors() == ["[mlTrainingPipeline] could not install the mltp helper: 'python3' is older than Python 3.9, which the mltp helper needs (the python option)"]
    assert h.helperVerbs() == []
}

test('a library without the bundle says to set helperCommand or helperPipSpec') { PipelineHarness h ->
    h.resources['mltp/bundle.txt'] = null
    h.fakeHelper()
    h.run()
    assert h.result == 'FAILURE'
    assert h.errors() == ['[mlTrainingPipeline] this copy of the library has no bundled helper (resources/mltp/); set helperCommand or helperPipSpec']

    PipelineHarness odd = newHarness()
    odd.resources['mltp/bundle.txt'] = '../../etc/passwd\n'
    odd.fakeHelper()
    odd.run()
    assert odd.errors() == ['[mlTrainingPipeline] resources/mltp/bundle.txt names no helper wheel; set helperCommand or helperPipSpec']
    assert odd.callsOf('libraryResource').collect { it.args[0] } == ['mltp/helper.sh', 'mltp/install.sh', 'mltp/bundle.txt']
}

// ------------------------------------------------------------------ report, options, timeout

test('a missing JUnit plugin does not break the build') { PipelineHarness h ->
    h.missingSteps << 'junit'
    h.fakeHelper()
    h.run()
    assert h.result == 'SUCCESS'
    assert h.logText().contains('the JUnit plugin is not installed')
    assert h.currentBuild.description

    PipelineHarness unbound = newHarness()
    unbound.unboundSteps << 'junit'
    unbound.fakeHelper()
    unbound.run()
    assert unbound.result == 'SUCCESS'
    assert unbound.logText().contains('the JUnit plugin is not installed')
}

test('a missing report (helper died early) does not break the report stage') { PipelineHarness h ->
    h.fakeHelper(rc: [wait: 4], report: false, errors: [wait: 'Preprocessing failed: ClientError'])
    h.run()
    assert h.result == 'FAILURE'
    assert h.errors() == ['[mlTrainingPipeline] Preprocessing failed: ClientError']
    assert h.callsOf('archiveArtifacts')[0].archived == []
    assert h.currentBuild.description == null
}

test('a stale report from an earlier build in the workspace is removed first') { PipelineHarness h ->
    PipelineHarness.write(h.workspace.path + '/.mltp/report/summary.txt', 'OLD build\n')
    h.fakeHelper(rc: [publish: 5], errors: [publish: 'no'])
    h.run()
    assert !h.file('.mltp/report/summary.txt').exists()
}

test('timeout is capped at 24 hours; numeric strings accepted') { PipelineHarness h ->
    h.fakeHelper()
    h.run(timeoutMinutes: 100000)
    assert h.result == 'SUCCESS'
    assert h.callsOf('timeout')[0].args[0] == [time: 1440, unit: 'MINUTES']
    assert h.logText().contains('timeoutMinutes 100000 is more than the maximum; using 1440')
    assert (h.shFor('wait').env.MLTP_TIMEOUT as int) <= 1440

    PipelineHarness s = newHarness()
    s.fakeHelper()
    s.run(timeoutMinutes: '240')
    assert s.callsOf('timeout')[0].args[0] == [time: 240, unit: 'MINUTES']
}

test('unknown options and bad values: one error line listing all, nothing runs') { PipelineHarness h ->
    h.fakeHelper()
    h.run(credentialId: 'x', mode: 'cloud', onGateFailure: 'WARN', timeoutMinutes: 0,
          helperCommand: '/bin/mltp', helperPipSpec: 'mltp', region: 'Mars', config: 42)
    assert h.result == 'FAILURE'
    assert h.errors().size() == 1
    String message = h.errors()[0]
    assert message.startsWith('[mlTrainingPipeline] invalid options: ')
    assert !message.contains('\n')
    assert message.contains("unknown option 'credentialId' (did you mean 'credentialsId'?)")
    assert message.contains("mode must be one of aws, local, validate, not 'cloud'")
    assert message.contains("onGateFailure must be FAILURE or UNSTABLE, not 'WARN'")
    assert message.contains("timeoutMinutes must be a whole number of minutes, at least 1, not '0'")
    assert message.contains('give helperCommand or helperPipSpec, not both')
    assert message.contains("region 'Mars' is not an AWS region name")
    assert message.contains('config must be a string')
    assert h.callsOf('node').isEmpty() && h.shCalls().isEmpty()

    PipelineHarness far = newHarness()
    far.run(colour: 'blue')
    assert far.errors()[0].contains("unknown option 'colour' (known options: config, mode, agent")
}

test('a Windows agent is refused with a clear line') { PipelineHarness h ->
    h.unix = false
    h.fakeHelper()
    h.run()
    assert h.result == 'FAILURE'
    assert h.errors() == ['[mlTrainingPipeline] needs a Unix agent with sh; choose one with the agent option']
    assert h.shCalls().isEmpty()
}

// ------------------------------------------------------------------ the source itself

test('source: every sh call uses a constant script; no JsonSlurper, no @NonCPS') { PipelineHarness h ->
    int shCount = 0
    new File(ROOT, 'vars').listFiles().findAll { it.name.endsWith('.groovy') }.each { File f ->
        String src = f.readLines().findAll { !it.trim().startsWith('//') }.join('\n')
        List shCalls = (src =~ /\bsh\s*\(([^)]*)\)/).collect { it[1] }
        shCount += shCalls.size()
        shCalls.each { String args -> assert args =~ /^script: (HELPER_SH|INSTALL_SH),/, f.name }
        assert !(src =~ /(?<![\/\w])sh\s+['"]/)     // the sh step without parentheses
        assert !src.contains('"""')
        assert !src.contains('JsonSlurper')
        assert !src.contains('@NonCPS')
        // Every script constant is single-quoted: no GString can sneak a value in.
        assert !(src =~ /(HELPER_SH|INSTALL_SH)\s*=\s*"/)
    }
    assert shCount >= 2
    // The only verbs a step can run are the ones helper.sh accepts, and the other way round.
    String helperSh = new File(ROOT, 'resources/mltp/helper.sh').text
    String accepted = (helperSh =~ /(?m)^\s+([a-z|\s\\-]+)\) ;;$/)[0][1]
    assert accepted.replace('\\', ' ').split(/\s*\|\s*/).collect { it.trim() } as Set == h.loadVar('mltpHelper').@VERBS as Set
}

// Runs Jenkinsfile.example with mlTrainingPipeline run by the harness h; returns what it echoed.
List<String> runExample(PipelineHarness h, List<Map> seen) {
    List<String> echoed = []
    Binding b = new Binding()
    b.setVariable('mlTrainingPipeline', { Map opts ->
        seen.add(opts)
        if (opts.credentialsId) {
            h.awsCredentials[opts.credentialsId] = [ACCESS_KEY, SECRET_KEY]
        }
        h.run(opts)
        if (h.thrown) {
            throw h.thrown
        }
        return h.returned
    })
    b.setVariable('echo', { Object s -> echoed.add(String.valueOf(s)) })
    b.setVariable('env', [JOB_NAME: 'ml-pipeline/main'])
    try {
        new GroovyShell(PipelineHarness.classLoader, b).evaluate(new File(ROOT, 'Jenkinsfile.example'))
    } catch (hudson.AbortException expected) {
        echoed.add('threw: ' + expected.message)
    }
    return echoed
}

test('Jenkinsfile.example parses, its options are accepted, and it reads the outcome') { PipelineHarness h ->
    List<Map> seen = []
    h.branch('main', true)
    h.fakeHelper()
    List<String> echoed = runExample(h, seen)
    assert seen.size() == 1
    assert h.result == 'SUCCESS'
    assert echoed == ['result passed, version none, auc 0.941']

    // a failed build: the onOutcome closure sees it, then the step throws
    PipelineHarness failed = newHarness()
    failed.branch('main', true)
    failed.fakeHelper(rc: [wait: 4], errors: [wait: 'run failed at Training'])
    List<String> failedEchoed = runExample(failed, [])
    assert failedEchoed == ['training failed: run failed at Training ', 'threw: [mlTrainingPipeline] run failed at Training']
}

// ------------------------------------------------------------------ a lost agent

test('agent lost during wait: the execution is stopped from another agent, the error rethrown') { PipelineHarness h ->
    Map options = withAwsCredentials(h) + [agent: 'linux']
    hudson.remoting.ChannelClosedException lost = new hudson.remoting.ChannelClosedException('channel is already closed')
    h.fakeHelper(actions: [wait: { throw lost }], info: [name: 'fraud-detection', state_machine: 'fraud-detection',
                                                         run_name: 'jenkins-ml-pipeline-main-7', register: 'true'])
    h.run(options)

    assert h.result == 'FAILURE'
    assert h.thrown.is(lost)
    assert h.helperVerbs() == ALL_VERBS + ['stop']
    assert h.callsOf('node').collect { it.args } == [['linux'], ['linux']]   // a second agent, same label
    assert h.callsOf('checkout').size() == 2                               // stop reads the config
    Map stop = h.shFor('stop')
    assert stop.credentials == ['aws-ml']
    assert h.logText().contains('[mlTrainingPipeline] lost the agent (hudson.remoting.ChannelClosedException): ' +
                                'stopping the Step Functions execution jenkins-ml-pipeline-main-7 (state machine fraud-detection) from another agent')
    assert !h.logText().contains('left running')
}

test('agent lost and no agent can stop the run: the log names the run left running') { PipelineHarness h ->
    hudson.remoting.ChannelClosedException lost = new hudson.remoting.ChannelClosedException('channel is already closed')
    h.fakeHelper(actions: [wait: { throw lost }, stop: { throw new hudson.remoting.ChannelClosedException('again') }],
                 info: [name: 'fraud-detection', state_machine: 'fraud-detection', run_name: 'jenkins-ml-pipeline-main-7'])
    h.run()
    assert h.thrown.is(lost)
    assert h.logText().contains('could not stop the execution from another agent: hudson.remoting.ChannelClosedException')
    assert h.logText().contains('[mlTrainingPipeline] the Step Functions execution jenkins-ml-pipeline-main-7 ' +
                                '(state machine fraud-detection) was left running: stop it in the AWS console or with ' +
                                '`mltp stop` (MLTP_RUN_NAME=jenkins-ml-pipeline-main-7)')
}

test('sh returning -1 (agent gone) also stops the run, and the build fails with one line') { PipelineHarness h ->
    h.fakeHelper(rc: [wait: -1], info: [name: 'fraud-detection', state_machine: 'fraud-detection', run_name: 'jenkins-ml-pipeline-main-7'])
    h.run()
    assert h.result == 'FAILURE'
    assert h.helperVerbs() == ALL_VERBS + ['stop']
    assert h.errors() == ['[mlTrainingPipeline] lost the connection to the agent during mltp wait']
    assert h.logText().contains('lost the agent (mltp wait ended with status -1)')
}

test('a plain failure of sh is not an agent loss: no stop, no second agent') { PipelineHarness h ->
    IOException disk = new IOException('No space left on device')
    h.fakeHelper(actions: [wait: { throw disk }])
    h.run()
    assert h.thrown.is(disk)
    assert h.helperVerbs() == ALL_VERBS
    assert h.callsOf('node').size() == 1

    PipelineHarness local = newHarness()
    local.fakeHelper(actions: [run: { throw new hudson.remoting.ChannelClosedException('gone') }])
    local.run(mode: 'local')
    assert local.helperVerbs() == ['validate', 'run']        // nothing runs on AWS: nothing to stop
    assert local.callsOf('node').size() == 1
}
