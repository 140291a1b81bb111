// Unit tests of mlTrainingPipeline's option `approval` (asked and recorded by
// vars/mlApproveModel.groovy, the one implementation of the decision): the question
// comes after the node, holds no agent and no credentials, and the decision is
// recorded on a new agent with `mltp approve|reject`.

import groovy.transform.Field
import org.jenkinsci.plugins.workflow.steps.FlowInterruptedException
import org.jenkinsci.plugins.workflow.steps.TimeoutStepExecution

@Field final String APPROVAL_ACCESS_KEY = 'AKIAIOSFODNN7EXAMPLE'
@Field final String APPROVAL_SECRET_KEY = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY'
@Field final Map APPROVAL = [submitter: 'release-managers', timeoutHours: 72]
@Field final String PACKAGE_ARN = 'arn:aws:sagemaker:eu-west-1:123456789012:model-package/fraud-detection/3'

Map approvalOptions(PipelineHarness h, Map approval) {
    h.awsCredentials['aws-ml'] = [APPROVAL_ACCESS_KEY, APPROVAL_SECRET_KEY]
    return [credentialsId: 'aws-ml', approval: approval]
}

// Index of the first call of `step` after call number `after`.
int indexAfter(PipelineHarness h, String step, int after) {
    for (int i = after + 1; i < h.calls.size(); i++) {
        if (h.calls[i].step == step) {
            return i
        }
    }
    return -1
}

test('approval: approve records the approver on a new agent; no agent or credentials held while waiting') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(approvalFiles: true)
    Map asked = null
    h.inputHandler = { Map options ->
        asked = options
        return [decision: 'Approve', reason: 'beats the champion', approver: 'rm-alice']
    }
    h.run(approvalOptions(h, APPROVAL))

    assert h.result == 'SUCCESS', h.logText()
    assert h.helperVerbs() == ['validate', 'publish', 'start', 'wait', 'approve']
    assert h.stageNames() == ['Validate', 'Deploy', 'Train', 'Report', 'Approval']

    // the question: outside any node and any withCredentials, with the tables
    Map input = h.callsOf('input')[0]
    assert input.cwd == null                       // no agent held
    assert input.credentials == []                 // nothing bound
    assert !input.env.containsKey('AWS_SECRET_ACCESS_KEY')
    assert asked.submitter == 'release-managers' && asked.submitterParameter == 'approver'
    assert asked.message.startsWith('Approve fraud-detection/3 for deployment?')
    assert asked.message.contains('auc     0.941  >= 0.9  pass') && asked.message.contains('champion fraud-detection/2 vs this run')
    assert asked.parameters*.name == ['decision', 'reason']
    assert h.logText().contains('champion fraud-detection/2 vs this run\nauc  0.93  0.941  +0.011  better')  // in the log too
    assert h.callsOf('timeout').collect { it.args[0] } == [[time: 180, unit: 'MINUTES'], [time: 72, unit: 'HOURS']]

    // the first node ended before the question; a second one records the decision
    int inputAt = h.calls.indexOf(input)
    List nodes = h.callsOf('node')
    assert nodes.size() == 2
    assert h.calls.indexOf(nodes[1]) > inputAt
    assert indexAfter(h, 'checkout', inputAt) > inputAt
    Map approve = h.shFor('approve')
    assert approve.credentials == ['aws-ml']       // bound only around the decision's call
    assert approve.env.MLTP_MODEL_VERSION == PACKAGE_ARN
    assert approve.env.MLTP_APPROVER == 'rm-alice'
    assert approve.env.MLTP_APPROVAL_NOTE == 'beats the champion'
    assert h.currentBuild.description.endsWith('; approved fraud-detection/3 (by rm-alice)')
    h.allText().each { String t -> assert !t.contains(APPROVAL_SECRET_KEY) }
}

test('approval: reject sends the reason given in the input') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(approvalFiles: true)
    h.inputHandler = { Map options -> [decision: 'Reject', reason: 'worse recall on the fraud ring', approver: 'rm-bob'] }
    h.run(approvalOptions(h, APPROVAL))

    assert h.result == 'SUCCESS'
    assert h.helperVerbs().last() == 'reject'
    Map reject = h.shFor('reject')
    assert reject.env.MLTP_APPROVAL_NOTE == 'worse recall on the fraud ring'
    assert reject.env.MLTP_APPROVER == 'rm-bob'
    assert reject.env.MLTP_MODEL_VERSION == PACKAGE_ARN
    assert h.logText().contains('[mlTrainingPipeline] rejected fraud-detection/3 (by rm-bob): worse recall on the fraud ring')
}

test('approval: a timeout leaves the version Pending and the build says so') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(approvalFiles: true)
    h.inputHandler = { Map options ->
        throw new FlowInterruptedException('ABORTED', 'timeout', [new TimeoutStepExecution.ExceededTimeout()])
    }
    h.run(approvalOptions(h, [submitter: 'release-managers', timeoutHours: 2]))

    assert h.result == 'SUCCESS'
    assert h.thrown == null
    assert !('approve' in h.helperVerbs()) && !('reject' in h.helperVerbs())
    assert h.callsOf('node').size() == 1           // nothing to record: no second agent
    assert h.logText().contains('no decision within 2 h: fraud-detection/3 stays PendingManualApproval')
    assert h.currentBuild.description.endsWith('; approval timed out: fraud-detection/3 stays PendingManualApproval')
}

test('approval: aborting the build while it waits aborts it, unwrapped; nothing recorded') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(approvalFiles: true)
    FlowInterruptedException abort = new FlowInterruptedException('ABORTED', 'aborted by rm-carol')
    h.inputHandler = { Map options -> throw abort }
    h.run(approvalOptions(h, APPROVAL))

    assert h.result == 'ABORTED'
    assert h.thrown.is(abort)
    assert !('approve' in h.helperVerbs()) && !('reject' in h.helperVerbs())
}

test('approval: a failed decision call ends the build with one line') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(approvalFiles: true, rc: [approve: 5], errors: [approve: 'UpdateModelPackage arn:...: AWS refused: AccessDeniedException'])
    h.inputHandler = { Map options -> [decision: 'Approve', reason: '', approver: 'rm-alice'] }
    h.run(approvalOptions(h, APPROVAL))

    assert h.result == 'FAILURE'
    assert h.errors() == ['[mlTrainingPipeline] could not record the decision: UpdateModelPackage arn:...: AWS refused: AccessDeniedException']
}

test('approval: not asked on branches, after a failed gate, or when already Approved') { PipelineHarness h ->
    h.branch('feature/x')
    h.fakeHelper(approvalFiles: true)
    h.inputHandler = { Map options -> assert false: 'no question expected' }
    h.run(approvalOptions(h, APPROVAL))
    assert h.result == 'SUCCESS'
    assert h.callsOf('input').isEmpty()
    assert h.logText().contains('no approval asked: this branch does not register (only the default branch does)')

    PipelineHarness gate = newHarness()
    gate.branch('main', true)
    gate.fakeHelper(approvalFiles: true, rc: [wait: 3], errors: [wait: 'metric gate failed: auc = 0.8, needs >= 0.9'])
    gate.run(approvalOptions(gate, APPROVAL))
    assert gate.result == 'FAILURE' && gate.callsOf('input').isEmpty()

    PipelineHarness unstable = newHarness()
    unstable.branch('main', true)
    unstable.fakeHelper(approvalFiles: true, rc: [wait: 3], errors: [wait: 'metric gate failed: auc = 0.8, needs >= 0.9'])
    unstable.run(approvalOptions(unstable, APPROVAL) + [onGateFailure: 'UNSTABLE'])
    assert unstable.result == 'UNSTABLE' && unstable.callsOf('input').isEmpty()
    assert unstable.logText().contains('no approval asked: the run did not pass')

    PipelineHarness approved = newHarness()
    approved.branch('main', true)
    approved.fakeHelper(approvalFiles: true, approvalStatus: 'Approved')
    approved.run(approvalOptions(approved, APPROVAL))
    assert approved.result == 'SUCCESS' && approved.callsOf('input').isEmpty()
    assert approved.logText().contains('no approval asked: fraud-detection/3 is Approved already')
}

test('approval: without the option nothing changes: no question, no extra stage or agent') { PipelineHarness h ->
    h.branch('main', true)
    h.fakeHelper(approvalFiles: true)
    h.run()
    assert h.result == 'SUCCESS'
    assert h.callsOf('input').isEmpty()
    assert h.stageNames() == ['Validate', 'Deploy', 'Train', 'Report']
    assert h.callsOf('node').size() == 1
    assert !h.logText().contains('approval')
}

test('approval: bad option values are refused before anything runs') { PipelineHarness h ->
    h.fakeHelper(approvalFiles: true)
    h.run(approval: [submitter: 'rm', timeoutHours: 0, colour: 'red'])
    assert h.result == 'FAILURE'
    assert h.errors()[0].contains("approval: unknown key 'colour' (known: submitter, timeoutHours)")
    assert h.errors()[0].contains("approval.timeoutHours must be a whole number of hours from 1 to 720, not '0'")
    assert h.callsOf('node').isEmpty()

    PipelineHarness notMap = newHarness()
    notMap.fakeHelper()
    notMap.run(approval: 'yes please')
    assert notMap.errors()[0].contains('approval must be a map like')
}
