// mlApproveModel(version: N): approve (or reject) a registered model version from
// any job, e.g. a release job run days after the training build.
//
// The one implementation of the decision: mlTrainingPipeline's `approval` option
// asks its question with ask() below and records the answer with decide(), the
// same call this step makes. Like the other steps it only names options (the
// table in vars/mltpHelper.groovy): the shared runner installs the bundled helper
// and runs `mltp approve|reject` with values in the environment, AWS credentials
// bound only around that call. Failures end the build with one line
// "[mlApproveModel] <reason>".

import groovy.transform.Field

@Field final String PREFIX = '[mlApproveModel] '

// Returns the decision: [version:, run: (as given), status: 'Approved'|'Rejected',
// approver: (by, else BUILD_USER_ID, else null: the agent's OS user), note:].
def call(Map options = [:]) {
    Map cfg = mltpHelper.resolveOptions('mlApproveModel', options)
    Map decision = null
    mltpHelper.onAgent(cfg.agent) {
        decision = decide(cfg, PREFIX, '')
    }
    return decision
}

// Records the decision on the current agent: `mltp approve|reject` (cfg.decision)
// of cfg.version or cfg.run, in the repo's registry (checked out from scm) or in
// cfg.modelPackageGroup. A failure ends the build with prefix + lead + the reason.
// Returns what was decided (see call).
Map decide(Map cfg, String prefix, String lead) {
    if (!cfg.modelPackageGroup) {
        checkout(scm)   // the model repo: its config.yaml names the group and region
    }
    String tmp = pwd(tmp: true) + '/mltp'
    String errorFile = tmp + '/error.txt'
    Map helper = mltpHelper.install(prefix: prefix, tmp: tmp, errorFile: errorFile, python: cfg.python, lock: 'aws',
                                    helperCommand: cfg.helperCommand, helperPipSpec: cfg.helperPipSpec)
    List verbEnv = mltpHelper.registryEnv(cfg, helper, pwd(), errorFile)
    if (cfg.version != null) {
        verbEnv.add('MLTP_MODEL_VERSION=' + String.valueOf(cfg.version))
    } else {
        verbEnv.add('MLTP_MODEL_RUN=' + cfg.run)
    }
    if (cfg.note) {
        verbEnv.add('MLTP_APPROVAL_NOTE=' + cfg.note)
    }
    if (cfg.by) {
        verbEnv.add('MLTP_APPROVER=' + cfg.by)
    }
    int rc = mltpHelper.runVerb(cfg.decision, verbEnv, mltpHelper.awsCredentials(cfg))
    if (rc != 0) {
        error(prefix + lead + mltpHelper.readReason(prefix, errorFile, cfg.decision, rc))
    }
    return [version: cfg.version != null ? String.valueOf(cfg.version) : null, run: cfg.run,
            status: cfg.decision == 'reject' ? 'Rejected' : 'Approved', approver: cfg.by ?: (env.BUILD_USER_ID ?: null),
            note: cfg.note ?: null]
}

// ---------------------------------------------------------------------------
// The question after a training run (mlTrainingPipeline's approval option)
// ---------------------------------------------------------------------------

// What the question needs, from the run's report (mltpHelper.readRunReport, read on
// the agent: the registered version, the gate and champion tables, the metrics and
// the report's link). ask=false with the reason when there is nothing to decide.
// registers: the helper's verdict for this build.
Map facts(String mode, boolean registers, Map report) {
    Map facts = [ask: false, report: report ?: [:]]
    if (mode != 'aws') {
        facts.why = "mode '${mode}' registers nothing to approve in the registry"
        return facts
    }
    if (!registers) {
        facts.why = 'this branch does not register (only the default branch does)'
        return facts
    }
    if (currentBuild.currentResult != 'SUCCESS') {
        facts.why = 'the run did not pass'
        return facts
    }
    if (!facts.report.modelPackageArn) {
        facts.why = 'no registered model package was found'
        return facts
    }
    facts.arn = facts.report.modelPackageArn
    facts.name = facts.report.modelPackageGroup + '/' + facts.report.version
    facts.status = facts.report.approvalStatus
    facts.gate = facts.report.gate ?: ''
    if (facts.status != 'PendingManualApproval') {
        facts.why = "${facts.name} is ${facts.status} already"
        return facts
    }
    facts.ask = true
    return facts
}

// Asks, outside any node and any credentials, and records the answer on a new
// agent. cfg: the training step's options (approval, agent, config, region, ...);
// prefix: the training step's, which these lines belong to.
// Returns the approval's part of the outcome: [asked:, why: (when not asked or no
// answer), version:, modelPackageArn:, status:, approver:, note:].
Map ask(Map cfg, Map facts, String prefix) {
    Map result = [asked: false, why: facts?.why ?: 'nothing was registered', version: facts?.name, modelPackageArn: facts?.arn,
                  status: facts?.status, approver: null, note: null]
    if (facts == null || !facts.ask) {
        echo(prefix + 'no approval asked: ' + result.why)
        return result
    }
    result.asked = true
    result.why = null
    Map approval = cfg.approval
    Map answer = null
    stage('Approval') {
        String question = "Approve ${facts.name} for deployment?\n\n${facts.gate}"
        if (facts.gate) {
            echo(facts.gate)   // the question's tables, also readable in the log
        }
        echo(prefix + "waiting up to ${approval.timeoutHours} h for ${approval.submitter ?: 'anyone allowed to build'} to approve or reject ${facts.name}")
        notifyApprovers(cfg, facts, prefix)
        try {
            timeout(time: approval.timeoutHours, unit: 'HOURS') {
                Map inputOptions = [id: 'MltpApproval', message: question, ok: 'Submit', submitterParameter: 'approver',
                                    parameters: [choice(name: 'decision', choices: ['Approve', 'Reject'].join('\n'),
                                                        description: 'Approve: the version becomes Approved and deployable. Reject: Rejected.'),
                                                 text(name: 'reason', defaultValue: '',
                                                      description: 'Why (kept with the decision in the model registry)')]]
                if (approval.submitter) {
                    inputOptions.submitter = approval.submitter
                }
                answer = input(inputOptions)
            }
        } catch (InterruptedException interruption) {
            if (!exceededTimeout(interruption)) {
                throw interruption   // aborted (the build, or Abort on the question): the version stays Pending
            }
        }
        if (answer == null) {
            echo(prefix + "no decision within ${approval.timeoutHours} h: ${facts.name} stays PendingManualApproval " +
                 '(approve it later with mlApproveModel or mltp approve)')
            describe("approval timed out: ${facts.name} stays PendingManualApproval")
            result.why = "no decision within ${approval.timeoutHours} h"
            return
        }
        String verb = answer.decision == 'Reject' ? 'reject' : 'approve'
        String approver = answer.approver ? String.valueOf(answer.approver) : ''
        String reason = answer.reason ? String.valueOf(answer.reason).trim() : ''
        Map decision = [version: facts.arn, decision: verb, note: reason, by: approver, config: cfg.config,
                        region: cfg.region, credentialsId: cfg.credentialsId, python: cfg.python,
                        helperCommand: cfg.helperCommand, helperPipSpec: cfg.helperPipSpec]
        mltpHelper.onAgent(cfg.agent) {
            decide(decision, prefix, 'could not record the decision: ')
        }
        String done = (verb == 'approve' ? 'approved' : 'rejected') + " ${facts.name}" + (approver ? " (by ${approver})" : '')
        echo(prefix + done + (reason ? ': ' + reason : ''))
        describe(done)
        result.status = verb == 'approve' ? 'Approved' : 'Rejected'
        result.approver = approver ?: null
        result.note = reason ?: null
    }
    return result
}

// Tells the approvers that a question waits, outside any agent and credentials: the
// notifyApprovers closure, else the mail step to approverEmails (Mailer plugin), else
// nothing. A missing plugin or a failure is one line; the question is asked anyway.
def notifyApprovers(Map cfg, Map facts, String prefix) {
    if (cfg.notifyApprovers == null && !cfg.approverEmails) {
        return
    }
    Map report = facts.report ?: [:]
    Map message = [version: facts.name, modelPackageArn: facts.arn, metrics: report.metrics ?: [:], champion: report.champion,
                   gate: mltpHelper.plainText(facts.gate), summary: mltpHelper.plainText(report.summary) ?: null,
                   reportUrl: report.reportUrl, inputUrl: env.BUILD_URL ? env.BUILD_URL + 'input/' : null,
                   submitter: cfg.approval.submitter, timeoutHours: cfg.approval.timeoutHours]
    message.subject = mltpHelper.plainText("Approve ${facts.name}? (${env.JOB_NAME ?: 'mltp'} #${env.BUILD_NUMBER ?: '?'})").replace('\n', ' ')
    message.text = messageText(message)
    if (cfg.notifyApprovers != null) {
        mltpHelper.optionalStep(prefix, 'notify the approvers', 'notifyApprovers called a step this Jenkins does not have') {
            cfg.notifyApprovers.call(message)
        }
        return
    }
    String sent = mltpHelper.optionalStep(prefix, 'mail the approvers', 'no mail step (Mailer plugin): the approvers are not mailed') {
        mail(to: cfg.approverEmails, subject: message.subject, body: message.text, mimeType: 'text/plain', charset: 'UTF-8')
    }
    if (sent == 'ok') {
        echo(prefix + 'mailed the question to ' + cfg.approverEmails)
    }
}

// The notification as plain text: the version, the run's summary, the gate and
// champion tables, the links. Text from the run has its control characters dropped.
String messageText(Map message) {
    List lines = ["${message.version} waits for a decision: approve or reject it within ${message.timeoutHours} h" +
                  (message.submitter ? " (${message.submitter})." : '.'), '']
    if (message.summary) {
        lines.add(message.summary)
        lines.add('')
    }
    if (message.gate) {
        lines.add(message.gate)
        lines.add('')
    }
    lines.add('Decide: ' + (message.inputUrl ?: 'the build\'s page in Jenkins'))
    if (message.reportUrl) {
        lines.add('Report: ' + message.reportUrl)
    }
    lines.add('Model package: ' + message.modelPackageArn)
    return mltpHelper.plainText(lines.join('\n')) + '\n'
}

// Adds a part to the build description, escaped: it holds a model name and a person's id.
def describe(String text) {
    String part = mltpHelper.escapeHtml(text)
    currentBuild.description = currentBuild.description ? currentBuild.description + '; ' + part : part
}

// True when the interruption is the approval's own timeout firing.
boolean exceededTimeout(InterruptedException interruption) {
    def causes = []
    try {
        causes = interruption.getCauses()
    } catch (MissingMethodException notFlow) {
        return false
    }
    for (int i = 0; i < causes.size(); i++) {
        if (causes[i].getClass().getName().endsWith('ExceededTimeout')) {
            return true
        }
    }
    return false
}
