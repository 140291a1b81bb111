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

def call(Map options = [:]) {
    Map cfg = mltpHelper.resolveOptions('mlApproveModel', options)
    mltpHelper.onAgent(cfg.agent) {
        decide(cfg, PREFIX, '')
    }
}

// Records the decision on the current agent: `mltp approve|reject` (cfg.decision)
// of cfg.version or cfg.run, in the repo's registry (checked out from scm) or in
// cfg.modelPackageGroup. A failure ends the build with prefix + lead + the reason.
def decide(Map cfg, String prefix, String lead) {
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
}

// ---------------------------------------------------------------------------
// The question after a training run (mlTrainingPipeline's approval option)
// ---------------------------------------------------------------------------

// What the question needs, read on the agent while it is still held: the
// registered version (registration.txt) and the gate and champion tables
// (gate.txt), both written by `mltp wait`. ask=false with the reason when there
// is nothing to decide. registers: the helper's verdict for this build.
Map facts(String mode, boolean registers, String reportDir) {
    Map facts = [ask: false]
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
    Map registration = mltpHelper.readKeyValues(reportDir + '/registration.txt')
    if (!registration.model_package_arn) {
        facts.why = 'no registered model package was found'
        return facts
    }
    facts.arn = registration.model_package_arn
    facts.name = registration.group + '/' + registration.version
    facts.status = registration.approval_status
    facts.gate = fileExists(reportDir + '/gate.txt') ? readFile(reportDir + '/gate.txt').trim() : ''
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
def ask(Map cfg, Map facts, String prefix) {
    if (facts == null || !facts.ask) {
        echo(prefix + 'no approval asked: ' + (facts?.why ?: 'nothing was registered'))
        return
    }
    Map approval = cfg.approval
    Map answer = null
    stage('Approval') {
        String question = "Approve ${facts.name} for deployment?\n\n${facts.gate}"
        if (facts.gate) {
            echo(facts.gate)   // the question's tables, also readable in the log
        }
        echo(prefix + "waiting up to ${approval.timeoutHours} h for ${approval.submitter ?: 'anyone allowed to build'} to approve or reject ${facts.name}")
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
    }
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
