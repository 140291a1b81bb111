// mlApproveModel(version: N): approve (or reject) a registered model version from
// any job, e.g. a release job run days after the training build.
//
// Like mlTrainingPipeline it only names options: the shared runner
// (vars/mltpHelper.groovy) installs the bundled helper and runs
// `mltp approve|reject` with values in the environment, AWS credentials bound only
// around that call. Failures end the build with one line "[mlApproveModel] <reason>".

import groovy.transform.Field

@Field final Map DEFAULTS = [
    version          : null,           // the version: N, 'group/N' or its model package ARN (or give run)
    run              : null,           // instead of version: the run (execution) that registered it
    decision         : 'approve',      // 'approve' or 'reject'
    note             : null,           // why; kept in the version's ApprovalDescription
    by               : null,           // who; null = BUILD_USER_ID (build-user-vars plugin), else the agent's OS user
    modelPackageGroup: null,           // act on this group (with region); null = registry of the repo's config.yaml
    region           : null,           // AWS region; null = aws.region of the config
    config           : 'config.yaml',  // the model repo's config, when modelPackageGroup is null (checked out from scm)
    credentialsId    : null,           // Jenkins "AWS Credentials" id; null = the agent's own role
    agent            : null,           // node label; null = any agent
    python           : 'python3',
    helperCommand    : null,
    helperPipSpec    : null,
]
@Field final String PREFIX = '[mlApproveModel] '
@Field final List STRINGS = ['run', 'decision', 'note', 'by', 'modelPackageGroup', 'region', 'config', 'credentialsId',
                             'agent', 'python', 'helperCommand', 'helperPipSpec']

def call(Map options = [:]) {
    List problems = []
    Map cfg = mltpHelper.resolveOptions(DEFAULTS, options, STRINGS, problems)
    if ((cfg.version == null) == (cfg.run == null)) {
        problems.add('give version or run (one of them)')
    }
    if (cfg.version != null && !(cfg.version instanceof Integer || cfg.version instanceof Long || cfg.version instanceof String)) {
        problems.add('version must be a number or a string')
    }
    if (!(cfg.decision in ['approve', 'reject'])) {
        problems.add("decision must be 'approve' or 'reject', not '${cfg.decision}'")
    }
    if (problems) {
        error(PREFIX + 'invalid options: ' + problems.join('; '))
    }
    if (cfg.agent) {
        node(cfg.agent) {
            decide(cfg)
        }
    } else {
        node {
            decide(cfg)
        }
    }
}

def decide(Map cfg) {
    if (!cfg.modelPackageGroup) {
        checkout(scm)   // the model repo: its config.yaml names the group and region
    }
    String tmp = pwd(tmp: true) + '/mltp'
    String errorFile = tmp + '/error.txt'
    Map helper = mltpHelper.install(prefix: PREFIX, tmp: tmp, errorFile: errorFile, python: cfg.python, lock: 'aws',
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
    int rc = mltpHelper.runVerb(cfg.decision, verbEnv, cfg.credentialsId ? [credentialsId: cfg.credentialsId] : null)
    if (rc != 0) {
        error(PREFIX + mltpHelper.readReason(PREFIX, errorFile, cfg.decision, rc))
    }
}
