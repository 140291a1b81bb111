// Unit tests of what the steps hand back to a Jenkinsfile: mlTrainingPipeline's
// returned outcome and its onOutcome closure (also when the build fails), the
// decision mlApproveModel returns, and the approval's notification (notifyApprovers,
// or mail with approverEmails): outside any agent and credentials, never when not
// asked for, one line when the Mailer plugin is missing.

import groovy.transform.Field
import org.jenkinsci.plugins.workflow.steps.FlowInterruptedException

@Field final String OUT_ACCESS_KEY = 'AKIAIOSFODNN7EXAMPLE'
@Field final String OUT_SECRET_KEY = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY'
@Field final String OUT_ARN = 'arn:aws:sagemaker:eu-west-1:123456789012:model-package/fraud-detection/3'
@Field final String REPORT_URL = 'https://jenkins.example.com/job/ml-pipeline/job/main/7/artifact/.mltp/report/report.html'

Map secretOptions(PipelineHarness h) {
    h.awsCredentials['aws-ml'] = [OUT_ACCESS_KEY, OUT_SECRET_KEY]
    return [credentialsId: 'aws-ml']
}

// wait also writes report.html, as the real helper does.
Map withHtml() {
    return [wait: { Map ctx -> PipelineHarness.write(ctx.env.MLTP_REPORT_DIR + '/report.html', '<!DOCTYPE html>\n') }]
}

// The closure's calls, recorded with where they happened.
Closure recorder(PipelineHarness h, List into) {
    return { Map r -> into.add([value: r, at: h.calls.size(), env: h.effectiveEnv()]) }
}

test('outcome: passed: returned and given to onOutcome once, outside the agent, with the registered version') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(approvalFiles: true, actions: withHtml())
    List seen = []
    h.run(secretOptions(h) + [onOutcome: recorder(h, seen)])

    assert h.result == 'SUCCESS', h.logText()
    Map r = h.returned
    assert r.result == 'passed' && r.message == null
    assert r.runName == 'jenkins-ml-pipeline-main-7'
    assert r.modelPackageArn == OUT_ARN && r.modelPackageGroup == 'fraud-detection' && r.version == '3'
    assert r.approvalStatus == 'PendingManualApproval'
    assert r.metrics == [auc: 0.941G, false_positive_rate: null]
    assert r.champion == [name: 'fraud-detection/2', metrics: [auc: 0.93G]]
    assert r.reportUrl == REPORT_URL
    assert r.summary == 'fraud-detection: gate passed (auc 0.941 >= 0.90), registered version 3'
    assert r.approval == null
    assert seen.size() == 1 && seen[0].value.is(r)
    // after the node: every step call before the closure ran, none after; nothing bound
    assert seen[0].at == h.calls.size()
    assert !seen[0].env.containsKey('AWS_SECRET_ACCESS_KEY')
}

test('outcome: a missed gate (FAILURE) still throws; onOutcome sees gate_missed with the metrics') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(approvalFiles: true, rc: [wait: 3], errors: [wait: 'metric gate failed: auc = 0.812, needs >= 0.9'],
                 actions: withHtml())
    List seen = []
    h.run(onOutcome: recorder(h, seen))

    assert h.result == 'FAILURE'
    assert h.thrown.message == '[mlTrainingPipeline] metric gate failed: auc = 0.812, needs >= 0.9'
    assert h.returned == null
    assert seen.size() == 1
    Map r = seen[0].value
    assert r.result == 'gate_missed'
    assert r.message == 'metric gate failed: auc = 0.812, needs >= 0.9'
    assert r.metrics.auc == 0.812G
    assert r.modelPackageArn == null && r.version == null     // nothing registered
    assert r.reportUrl == REPORT_URL
    // the closure ran after the error step, before the build ended
    assert h.calls.indexOf(h.callsOf('error')[0]) < seen[0].at

    // UNSTABLE: the step returns
    PipelineHarness unstable = newHarness()
    unstable.branch('main', true)
    unstable.fakeHelper(rc: [wait: 3], errors: [wait: 'auc = 0.812, needs >= 0.9'])
    unstable.run(onGateFailure: 'UNSTABLE')
    assert unstable.result == 'UNSTABLE'
    assert unstable.returned.result == 'gate_missed'
    assert unstable.returned.message == 'metric gate failed: auc = 0.812, needs >= 0.9'
}

test('outcome: failed run, invalid config, a failed install and an abort each say so through onOutcome') { PipelineHarness h ->
    List seen = []
    h.fakeHelper(rc: [wait: 4], errors: [wait: 'run failed at Training: AlgorithmError: boom'])
    h.run(onOutcome: recorder(h, seen))
    assert h.result == 'FAILURE'
    assert seen*.value*.result == ['failed']
    assert seen[0].value.message == 'run failed at Training: AlgorithmError: boom'
    assert seen[0].value.summary == 'fraud-detection: gate passed (auc 0.941 >= 0.90), registered version 3'

    PipelineHarness invalid = newHarness()
    List invalidSeen = []
    PipelineHarness.write(invalid.workspace.path + '/.mltp/report/registration.txt', 'model_package_arn=arn:OLD\nversion=1\n')
    invalid.fakeHelper(rc: [validate: 2], errors: [validate: 'config.yaml, line 4: gate[0].min: must be a number'])
    invalid.run(onOutcome: recorder(invalid, invalidSeen))
    Map r = invalidSeen[0].value
    assert r.result == 'invalid' && r.message == 'config.yaml, line 4: gate[0].min: must be a number'
    assert r.modelPackageArn == null && r.metrics == [:] && r.reportUrl == null   // an older build's files are not read

    PipelineHarness install = newHarness()
    List installSeen = []
    install.fakeHelper(installRc: 1, installError: 'no python3.11 on this agent')
    install.run(onOutcome: recorder(install, installSeen))
    assert installSeen[0].value.result == 'failed'
    assert installSeen[0].value.message == 'could not install the mltp helper: no python3.11 on this agent'

    PipelineHarness aborted = newHarness()
    List abortedSeen = []
    FlowInterruptedException abort = new FlowInterruptedException('ABORTED', 'aborted by alice')
    aborted.fakeHelper(actions: [wait: { Map ctx -> throw abort }])
    aborted.run(onOutcome: recorder(aborted, abortedSeen))
    assert aborted.result == 'ABORTED' && aborted.thrown.is(abort)
    assert abortedSeen[0].value.result == 'aborted'
    assert aborted.helperVerbs().contains('stop')
    assert aborted.calls.indexOf(aborted.shFor('stop')) < abortedSeen[0].at
}

test('outcome: a failing onOutcome is one warning line and changes nothing; the first error is what the build ends with') { PipelineHarness h ->
    h.fakeHelper()
    h.run(onOutcome: { Map r -> throw new IllegalStateException('slack is down') })
    assert h.result == 'SUCCESS'
    assert h.returned.result == 'passed'
    assert h.logText().contains('[mlTrainingPipeline] warning: could not run onOutcome: slack is down')

    PipelineHarness failed = newHarness()
    failed.fakeHelper(rc: [wait: 4], errors: [wait: 'run failed'])
    failed.missingSteps.add('slackSend')
    failed.run(onOutcome: { Map r -> failed.invokeStep('slackSend', [[message: r.result]] as Object[]) })
    assert failed.result == 'FAILURE' && failed.thrown.message == '[mlTrainingPipeline] run failed'
    assert failed.logText().contains('[mlTrainingPipeline] onOutcome called a step this Jenkins does not have')

    PipelineHarness bad = newHarness()
    bad.run(onOutcome: 'mail me')
    assert bad.errors() == ['[mlTrainingPipeline] invalid options: onOutcome must be a closure like { r -> echo r.result }']
}

test('outcome: mode validate passes with the run name only; without onOutcome nothing is called') { PipelineHarness h ->
    h.fakeHelper(info: [name: 'fraud-detection', run_name: 'jenkins-x-7', register: 'true'])
    h.run(mode: 'validate')
    assert h.returned.result == 'passed' && h.returned.runName == 'jenkins-x-7'
    assert h.returned.version == null && h.returned.metrics == [:]
}

test('outcome: with approval it carries the decision') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(approvalFiles: true)
    h.inputHandler = { Map options -> [decision: 'Approve', reason: 'better', approver: 'rm-alice'] }
    h.run(secretOptions(h) + [approval: [submitter: 'rm']])
    Map r = h.returned
    assert r.result == 'passed' && r.approvalStatus == 'Approved'
    assert r.approval == [asked: true, why: null, version: 'fraud-detection/3', modelPackageArn: OUT_ARN, status: 'Approved',
                          approver: 'rm-alice', note: 'better']

    PipelineHarness branch = newHarness()
    branch.branch('feature/x')
    branch.fakeHelper(approvalFiles: true)
    branch.run(approval: [submitter: 'rm'])
    assert branch.returned.approval.asked == false
    assert branch.returned.approval.why == 'this branch does not register (only the default branch does)'
}

test('mlApproveModel returns the decision; mlFetchModel returns path, version and SHA-256') { PipelineHarness h ->
    h.fakeHelper()
    h.run([version: 3, note: 'beats production', by: 'rm-alice'], 'mlApproveModel')
    assert h.returned == [version: '3', run: null, status: 'Approved', approver: 'rm-alice', note: 'beats production']

    PipelineHarness reject = newHarness()
    reject.env.BUILD_USER_ID = 'rm-bob'
    reject.fakeHelper()
    reject.run([run: 'jenkins-fraud-detection-main-42', decision: 'reject'], 'mlApproveModel')
    assert reject.returned == [version: null, run: 'jenkins-fraud-detection-main-42', status: 'Rejected', approver: 'rm-bob', note: null]

    PipelineHarness failed = newHarness()
    failed.fakeHelper(rc: [approve: 5], errors: [approve: 'AWS refused'])
    failed.run([version: 3], 'mlApproveModel')
    assert failed.result == 'FAILURE' && failed.returned == null

    PipelineHarness fetch = newHarness()
    fetch.fakeHelper(actions: ['fetch-model': { Map ctx ->
        PipelineHarness.write(ctx.env.MLTP_INFO_FILE, "arn=${OUT_ARN}\ngroup=fraud-detection\nversion=3\nstatus=Approved\n" +
                              "model=${ctx.env.MLTP_FETCH_DIR}/model.tar.gz\nmanifest=${ctx.env.MLTP_FETCH_DIR}/model-package.json\n" +
                              "sha256=${'a' * 64}\n")
    }])
    Script script = fetch.loadVar('mlFetchModel')
    Map fetched = null
    fetch.invokeStep('node', [{ -> fetched = script.invokeMethod('call', [[:]] as Object[]) }] as Object[])
    assert fetched.model == fetch.workspace.path + '/model/model.tar.gz'
    assert fetched.version == '3' && fetched.sha256 == 'a' * 64 && fetched.arn == OUT_ARN
}

// ------------------------------------------------------------------ the approval's notification

test('notifyApprovers: called once before the question, outside any agent and credentials, with the facts') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(approvalFiles: true, actions: withHtml())
    List seen = []
    h.inputHandler = { Map options -> [decision: 'Approve', reason: '', approver: 'rm-alice'] }
    h.run(secretOptions(h) + [approval: [submitter: 'release-managers', timeoutHours: 48], notifyApprovers: recorder(h, seen)])

    assert h.result == 'SUCCESS', h.logText()
    assert seen.size() == 1
    Map m = seen[0].value
    assert m.version == 'fraud-detection/3' && m.modelPackageArn == OUT_ARN
    assert m.metrics == [auc: 0.941G, false_positive_rate: null]
    assert m.champion == [name: 'fraud-detection/2', metrics: [auc: 0.93G]]
    assert m.gate.contains('auc     0.941  >= 0.9  pass') && m.gate.contains('champion fraud-detection/2 vs this run')
    assert m.reportUrl == REPORT_URL
    assert m.inputUrl == 'https://jenkins.example.com/job/ml-pipeline/job/main/7/input/'
    assert m.submitter == 'release-managers' && m.timeoutHours == 48
    assert m.subject == 'Approve fraud-detection/3? (ml-pipeline/main #7)'
    assert m.text.startsWith('fraud-detection/3 waits for a decision: approve or reject it within 48 h (release-managers).')
    assert m.text.contains('auc  0.93  0.941  +0.011  better')
    assert m.text.contains('Decide: https://jenkins.example.com/job/ml-pipeline/job/main/7/input/')
    assert m.text.contains('Report: ' + REPORT_URL)

    // before the input, after the node; no agent, nothing bound
    Map input = h.callsOf('input')[0]
    assert seen[0].at <= h.calls.indexOf(input)
    assert seen[0].at > h.calls.indexOf(h.callsOf('archiveArtifacts')[0])
    assert !seen[0].env.containsKey('AWS_SECRET_ACCESS_KEY') && !seen[0].env.containsKey('AWS_ACCESS_KEY_ID')
    assert h.callsOf('mail').isEmpty()
    [m.text, m.subject, m.gate].each { String t -> assert !t.contains(OUT_SECRET_KEY) && !t.contains(OUT_ACCESS_KEY) }
}

test('approverEmails: mail with the Mailer plugin, outside any agent and credentials') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(approvalFiles: true, actions: withHtml())
    h.inputHandler = { Map options -> [decision: 'Reject', reason: 'no', approver: 'rm-bob'] }
    h.run(secretOptions(h) + [approval: [submitter: 'rm'], approverEmails: 'rm@example.com, lead@example.com'])

    assert h.result == 'SUCCESS', h.logText()
    List mails = h.callsOf('mail')
    assert mails.size() == 1
    Map mail = mails[0]
    Map args = mail.args[0]
    assert args.to == 'rm@example.com, lead@example.com'
    assert args.subject == 'Approve fraud-detection/3? (ml-pipeline/main #7)'
    assert args.mimeType == 'text/plain'
    assert args.body.contains('fraud-detection/3 waits for a decision') && args.body.contains('Report: ' + REPORT_URL)
    assert args.body.contains('Decide: https://jenkins.example.com/job/ml-pipeline/job/main/7/input/')
    assert mail.cwd == null && mail.credentials == [] && !mail.env.containsKey('AWS_SECRET_ACCESS_KEY')
    assert h.calls.indexOf(mail) < h.calls.indexOf(h.callsOf('input')[0])
    assert !args.body.contains(OUT_SECRET_KEY)
    assert h.logText().contains('[mlTrainingPipeline] mailed the question to rm@example.com, lead@example.com')
}

test('approverEmails without the Mailer plugin: one line, no mail, the question still asked') { PipelineHarness h ->
    h.branch('main', true)
    h.missingSteps.add('mail')
    h.fakeHelper(approvalFiles: true)
    h.inputHandler = { Map options -> [decision: 'Approve', reason: '', approver: 'rm-alice'] }
    h.run(approval: [submitter: 'rm'], approverEmails: 'rm@example.com')

    assert h.result == 'SUCCESS', h.logText()
    assert h.callsOf('input').size() == 1 && h.helperVerbs().last() == 'approve'
    assert h.log.findAll { it.contains('Mailer') } == ['[mlTrainingPipeline] no mail step (Mailer plugin): the approvers are not mailed']
    assert !h.logText().contains('mailed the question')
}

test('no notification without notifyApprovers or approverEmails, nor when nothing is asked') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(approvalFiles: true)
    h.inputHandler = { Map options -> [decision: 'Approve', reason: '', approver: 'rm-alice'] }
    h.run(approval: [submitter: 'rm'])
    assert h.result == 'SUCCESS'
    assert h.callsOf('mail').isEmpty()
    assert !h.logText().contains('mail')

    // asked for, but no question (a branch build): no call, no mail
    PipelineHarness branch = newHarness()
    branch.branch('feature/x')
    branch.fakeHelper(approvalFiles: true)
    List seen = []
    branch.run(approval: [submitter: 'rm'], notifyApprovers: recorder(branch, seen))
    assert seen.isEmpty() && branch.callsOf('input').isEmpty()

    PipelineHarness mailBranch = newHarness()
    mailBranch.branch('feature/x')
    mailBranch.fakeHelper(approvalFiles: true)
    mailBranch.run(approval: [submitter: 'rm'], approverEmails: 'rm@example.com')
    assert mailBranch.callsOf('mail').isEmpty()
}

test('notification options: need approval, one of the two, addresses that look like addresses') { PipelineHarness h ->
    h.fakeHelper()
    h.run(approverEmails: 'rm@example.com')
    assert h.errors() == ['[mlTrainingPipeline] invalid options: notifyApprovers and approverEmails need approval']

    PipelineHarness both = newHarness()
    both.run(approval: [:], approverEmails: 'rm@example.com', notifyApprovers: { Map m -> })
    assert both.errors()[0].contains('give notifyApprovers or approverEmails, not both')

    PipelineHarness bad = newHarness()
    bad.run(approval: [:], approverEmails: 'release managers')
    assert bad.errors()[0].contains("approverEmails 'release managers' is not e-mail addresses separated by commas")
    assert bad.callsOf('node').isEmpty()
}

test('notification: hostile text from the run (HTML, control characters) stays inert text in the message') { PipelineHarness h ->
    String hostile = '<a href="https://evil.example/approve">APPROVED already, click</a>\u001b[31m\u202Etxt.exe'
    h.branch('main', true)
    h.fakeHelper(approvalFiles: true, summary: hostile, actions: withHtml())
    h.inputHandler = { Map options -> [decision: 'Approve', reason: '', approver: 'rm-alice'] }
    List seen = []
    h.run(approval: [submitter: 'rm'], notifyApprovers: recorder(h, seen))
    assert h.result == 'SUCCESS', h.logText()
    Map m = seen[0].value
    assert m.summary == '<a href="https://evil.example/approve">APPROVED already, click</a>[31mtxt.exe'
    assert !m.text.contains('\u001b') && !m.text.contains('\u202E')
    // the message's own lines are intact around it
    List lines = m.text.readLines()
    assert lines[0].startsWith('fraud-detection/3 waits for a decision')
    assert lines.contains(m.summary)
    assert lines.contains('Decide: https://jenkins.example.com/job/ml-pipeline/job/main/7/input/')

    PipelineHarness mailed = newHarness()
    mailed.branch('main', true)
    mailed.fakeHelper(approvalFiles: true, summary: hostile + '\r\nBcc: all@example.com')
    mailed.inputHandler = { Map options -> [decision: 'Approve', reason: '', approver: 'rm-alice'] }
    mailed.run(approval: [submitter: 'rm'], approverEmails: 'rm@example.com')
    Map args = mailed.callsOf('mail')[0].args[0]
    assert args.mimeType == 'text/plain'                       // the HTML is shown, never rendered
    assert !args.body.contains('\r') && !args.body.contains('\u001b')
    assert !args.subject.contains('\n') && !args.subject.contains('evil')
    assert args.to == 'rm@example.com'
}

test('readRunReport: numbers as numbers, empty as null, other text kept; a missing folder gives empty parts') { PipelineHarness h ->
    Script runner = h.loadVar('mltpHelper')
    Map values = ['metric.auc': '0.941', 'metric.loss': '1e-05', 'metric.delta': '-2.5', 'metric.recall': '', 'metric.odd': 'nan',
                  'metric.': 'no name', 'champion.auc': '0.93', status: 'passed']
    Map metrics = runner.numbers(values, 'metric.')
    assert metrics == [auc: 0.941G, loss: new BigDecimal('1E-5'), delta: -2.5G, recall: null, odd: 'nan']
    assert metrics.auc instanceof BigDecimal
    assert runner.numbers(values, 'champion.') == [auc: 0.93G]

    Map report = null
    h.invokeStep('node', [{ -> report = runner.readRunReport(h.workspace.path + '/.mltp/report') }] as Object[])
    assert report == [status: null, runName: null, summary: null, gate: '', metrics: [:], champion: null, modelPackageArn: null,
                      modelPackageGroup: null, version: null, approvalStatus: null, sha256: null]
}
