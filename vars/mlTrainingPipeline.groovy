// mlTrainingPipeline(): a model repo in, a trained, evaluated and registered model out.
//
// This step stays thin: the bundled `mltp` helper CLI does the work. Here we only
// name the options, have the shared runner (vars/mltpHelper.groovy) install the
// helper and run its verbs, map exit codes to build results and publish the report.
//
// Rules this file keeps (tests/vars/ checks them):
//  - No value ever goes into shell text: the runner's scripts are files from
//    resources/mltp/, run by constant text; values travel as withEnv variables.
//  - AWS secrets arrive only through withCredentials, and only around the helper
//    calls that talk to AWS (sync, deploy, start, wait, stop).
//  - Helper failures end the build with one line: "[mlTrainingPipeline] <reason>".
//  - CPS-safe Groovy: no JsonSlurper, no closures passed to collection methods,
//    no @NonCPS methods.

import groovy.transform.Field

// Every option and its default. An option not listed here is an error.
@Field final Map DEFAULTS = [
    config        : 'config.yaml', // the pipeline config, relative to the repo root (or absolute)
    mode          : 'aws',         // 'aws': deploy to Step Functions, train on SageMaker, register
                                   // 'local': run everything on the agent against an embedded AWS emulator
                                   // 'validate': only check the model repo and config
    agent         : null,          // node label to run on; null = any agent
    region        : null,          // AWS region; null = aws.region from the config
    credentialsId : null,          // id of a Jenkins "AWS Credentials" entry; null = the agent's own role
    timeoutMinutes: 180,           // the whole build, waiting for an agent included; capped at MAX_TIMEOUT_MINUTES
    onGateFailure : 'FAILURE',     // build result when the metric gate fails: 'FAILURE' or 'UNSTABLE'
    helperCommand : null,          // path of a pre-installed `mltp`; nothing gets installed
    helperPipSpec : null,          // pip requirement, e.g. 'mltp==0.1.0': install from a package index, not the bundled wheel
    python        : 'python3',     // Python 3.9+ on the agent, used to install the helper
    scriptPython  : null,          // mode 'local': the Python that runs the model's scripts (with their
                                   // packages, e.g. scikit-learn); null = the helper builds a cached virtualenv
                                   // per framework that mirrors the SageMaker container (its packages, the
                                   // training toolkit, requirements.txt): an agent needs only python3
                                   // and a package index
    defaultBranch : null,          // branch that registers and retrains on schedule; null = the multibranch primary branch
    preflight     : true,          // mode 'aws': `mltp sync` first checks the account read-only (mltp preflight)
    pruneOlderThanDays: null,      // on the default branch's scheduled (timer) builds, also run `mltp prune --yes`:
                                   // delete branch state machines idle this many days and code no kept run uses; null = never
    retrainTrigger: false,         // mode aws, default branch: install/update the retrain-on-new-data trigger after Train
    triggerRoleArn: null,          // with retrainTrigger: the trigger function's role; null = create mltp-trigger-<name>
    approval      : null,          // [submitter: 'release-managers', timeoutHours: 72]: after a registered run on the
                                   // default branch, ask for a decision (no agent held while waiting); null = no question
]

@Field final int MAX_TIMEOUT_MINUTES = 24 * 60
@Field final String PREFIX = '[mlTrainingPipeline] '   // starts every line the step itself writes
@Field final String REPORT_DIR = '.mltp/report'   // relative to the workspace; archived after Train
@Field final List MODES = ['aws', 'local', 'validate']
@Field final List GATE_RESULTS = ['FAILURE', 'UNSTABLE']
@Field final String HTML_REPORT = 'report.html'   // in REPORT_DIR: charts, CSP-safe for Jenkins' artifact pages
@Field final String TIMER_CAUSE = 'hudson.triggers.TimerTrigger$TimerTriggerCause'

// `mltp prune` on scheduled builds (the pruneOlderThanDays option); MLTP_OLDER_THAN comes from the environment.

// ---------------------------------------------------------------------------
// The step
// ---------------------------------------------------------------------------

def call(Map options = [:]) {
    Map cfg = resolveOptions(options == null ? [:] : options)
    long started = System.currentTimeMillis()
    Map ctx = null
    timeout(time: cfg.timeoutMinutes, unit: 'MINUTES') {
        if (cfg.agent) {
            node(cfg.agent) {
                ctx = runOnAgent(cfg, started)
            }
        } else {
            node {
                ctx = runOnAgent(cfg, started)
            }
        }
    }
    // The agent (and any credentials) is released before the question: a release
    // manager may take days, and the build holds nothing while it waits.
    if (cfg.approval != null && ctx != null) {
        awaitApproval(cfg, ctx.approval)
    }
}

def runOnAgent(Map cfg, long started) {
    if (!isUnix()) {
        error(PREFIX + 'needs a Unix agent with sh; choose one with the agent option')
    }
    Map ctx = null
    stage('Validate') {
        ctx = prepareAgent(cfg)
        runHelper(ctx, 'validate', false)
        // Only after validate: it refuses a committed `.mltp` symlink, through which
        // deleteDir() would empty a folder outside the workspace.
        dir(REPORT_DIR) {
            deleteDir()
        }
        Map info = readInfo(ctx.infoFile)
        ctx.runName = info.run_name
        ctx.stateMachine = info.state_machine
        ctx.info = info
        applyJobProperties(cfg, info)
    }
    if (cfg.mode == 'validate') {
        return ctx
    }
    boolean trainReached = false
    try {
        if (cfg.mode == 'aws') {
            stage('Deploy') {
                runHelper(ctx, 'publish', true)   // sync + deploy in one helper process
            }
        }
        stage('Train') {
            trainReached = true
            train(ctx, started)
        }
        installTrigger(ctx)
        if (cfg.approval != null) {
            ctx.approval = approvalFacts(ctx, readInfo(ctx.infoFile))
        }
    } finally {
        if (trainReached) {
            stage('Report') {
                publishReport(ctx)
            }
        }
    }
    return ctx
}

// Checks the repo out on the current agent and installs the helper there.
// Returns the context every helper call uses: paths, the helper, its environment.
Map prepareAgent(Map cfg) {
    Map ctx = [cfg: cfg]
    def scmVars = checkout(scm)
    ctx.workspace = pwd()
    ctx.tmp = pwd(tmp: true) + '/mltp'
    ctx.errorFile = ctx.tmp + '/error.txt'
    ctx.infoFile = ctx.tmp + '/info.txt'
    writeFile(file: ctx.tmp + '/README.txt', text: 'Scratch files of the mlTrainingPipeline step.\n')
    Map helper = mltpHelper.install(prefix: PREFIX, tmp: ctx.tmp, errorFile: ctx.errorFile, python: cfg.python,
                                    lock: cfg.mode == 'local' ? 'local' : 'aws',
                                    helperCommand: cfg.helperCommand, helperPipSpec: cfg.helperPipSpec)
    ctx.mltp = helper.mltp
    ctx.helperSh = helper.helperSh
    ctx.env = helperEnv(ctx, scmVars)
    return ctx
}

// start + wait (or `run --local`). If the build is aborted or times out meanwhile,
// stop the execution, then rethrow the original interruption so the build is ABORTED.
def train(Map ctx, long started) {
    Map cfg = ctx.cfg
    List trainEnv = ctx.env + ['MLTP_TIMEOUT=' + remainingMinutes(cfg.timeoutMinutes, started)]
    String verb = cfg.mode == 'local' ? 'run' : 'start'
    Map credentials = cfg.mode == 'aws' ? awsCredentials(cfg) : null
    int rc = 0
    try {
        rc = mltpHelper.runVerb(verb, trainEnv, credentials)
        if (rc == 0 && verb == 'start') {
            verb = 'wait'
            rc = mltpHelper.runVerb('wait', trainEnv, credentials)
        }
    } catch (InterruptedException interruption) {
        if (cfg.mode == 'aws') {
            stopRun(ctx, trainEnv)
        }
        throw interruption
    } catch (Exception problem) {
        if (cfg.mode == 'aws' && isAgentLoss(problem)) {
            stopAfterAgentLoss(ctx, problem.getClass().getName())
        }
        throw problem
    }
    if (rc == -1 && cfg.mode == 'aws') {
        // sh's status when the agent went away while the script ran.
        stopAfterAgentLoss(ctx, 'mltp ' + verb + ' ended with status -1')
        error(PREFIX + 'lost the connection to the agent during mltp ' + verb)
    }
    checkExit(ctx, verb, rc)
}

// Exceptions that mean the agent (or its connection) is gone, here or among the causes.
@Field final List AGENT_LOSS = [
    'hudson.remoting.ChannelClosedException',
    'hudson.remoting.RequestAbortedException',
    'java.nio.channels.ClosedChannelException',
    'org.jenkinsci.plugins.workflow.support.steps.AgentOfflineException',
]

boolean isAgentLoss(Throwable problem) {
    Throwable t = problem
    for (int depth = 0; t != null && depth < 10; depth++) {
        if (AGENT_LOSS.contains(t.getClass().getName())) {
            return true
        }
        t = t.getCause()
    }
    return false
}

// The agent that followed the run is gone, and the run goes on costing money.
// Stop it from another agent (a fresh checkout: `mltp stop` reads the config);
// when even that fails, say which run was left running.
def stopAfterAgentLoss(Map ctx, String why) {
    Map cfg = ctx.cfg
    String run = (ctx.runName ?: 'of this build') + (ctx.stateMachine ? ' (state machine ' + ctx.stateMachine + ')' : '')
    echo(PREFIX + 'lost the agent (' + why + '): stopping the Step Functions execution ' + run + ' from another agent')
    boolean stopped = false
    try {
        Closure stopHere = {
            Map other = prepareAgent(cfg)
            int rc = mltpHelper.runVerb('stop', other.env, awsCredentials(cfg))
            stopped = rc == 0
            if (!stopped) {
                echo(PREFIX + 'mltp stop failed: ' + mltpHelper.readReason(PREFIX, other.errorFile, 'stop', rc))
            }
        }
        if (cfg.agent) {
            node(cfg.agent, stopHere)
        } else {
            node(stopHere)
        }
    } catch (InterruptedException interruption) {
        throw interruption
    } catch (stopProblem) {
        echo(PREFIX + 'could not stop the execution from another agent: ' + stopProblem.getClass().getName())
    }
    if (!stopped) {
        echo(PREFIX + 'the Step Functions execution ' + run + ' was left running: stop it in the AWS console ' +
             'or with `mltp stop` (MLTP_RUN_NAME=' + (ctx.runName ?: 'the build tag') + ')')
    }
}

def stopRun(Map ctx, List trainEnv) {
    echo(PREFIX + 'build interrupted: stopping the Step Functions execution')
    try {
        int rc = mltpHelper.runVerb('stop', trainEnv, awsCredentials(ctx.cfg))
        if (rc != 0) {
            echo(PREFIX + 'mltp stop failed: ' + mltpHelper.readReason(PREFIX, ctx.errorFile, 'stop', rc))
        }
    } catch (stopProblem) {
        echo(PREFIX + 'could not stop the execution: ' + stopProblem.getClass().getName())
    }
}

// The retrain-on-new-data trigger (option retrainTrigger): installed or updated on
// default-branch builds of mode aws whose config sets `retrain`, after Train.
def installTrigger(Map ctx) {
    Map cfg = ctx.cfg
    if (!cfg.retrainTrigger || cfg.mode != 'aws') {
        return
    }
    Map info = ctx.info ?: [:]
    if (!isDefaultBranch(cfg, info)) {
        echo(PREFIX + 'the retrain trigger belongs to the default branch; not installing it from this branch')
        return
    }
    if (info.retrain != 'true') {
        echo(PREFIX + 'retrainTrigger is on but the config sets no retrain: nothing to install')
        return
    }
    stage('Trigger') {
        List triggerEnv = ctx.env
        if (cfg.triggerRoleArn) {
            triggerEnv = triggerEnv + ['MLTP_TRIGGER_ROLE_ARN=' + cfg.triggerRoleArn]
        }
        checkExit(ctx, 'trigger-install', mltpHelper.runVerb('trigger-install', triggerEnv, awsCredentials(cfg)))
    }
}

// Runs one helper verb in the shared environment and fails the build on a non-zero exit.
def runHelper(Map ctx, String verb, boolean needsAws) {
    checkExit(ctx, verb, mltpHelper.runVerb(verb, ctx.env, needsAws ? awsCredentials(ctx.cfg) : null))
}

// The Jenkins credentials the AWS verbs run with; null: the agent's own role.
Map awsCredentials(Map cfg) {
    return cfg.credentialsId ? [credentialsId: cfg.credentialsId] : null
}

def checkExit(Map ctx, String verb, int rc) {
    if (rc == 0) {
        return
    }
    String reason = mltpHelper.readReason(PREFIX, ctx.errorFile, verb, rc)
    if (rc == 3) {
        String message = PREFIX + (reason.toLowerCase().startsWith('metric gate failed') ? reason : 'metric gate failed: ' + reason)
        if (ctx.cfg.onGateFailure == 'UNSTABLE') {
            markUnstable(message)
            return
        }
        error(message)
    }
    error(PREFIX + reason)
}

def markUnstable(String message) {
    try {
        unstable(message)
    } catch (NoSuchMethodError noStep) {
        echo message
        currentBuild.result = 'UNSTABLE'
    } catch (MissingMethodException noStep) {
        echo message
        currentBuild.result = 'UNSTABLE'
    }
}

// ---------------------------------------------------------------------------
// Environment, info file, job properties, report
// ---------------------------------------------------------------------------

// Everything the helper is told, as KEY=value for withEnv. Registration and the
// branch are never forced from here: the helper decides them from Jenkins' own
// variables (BRANCH_NAME, CHANGE_ID, BRANCH_IS_PRIMARY) and MLTP_DEFAULT_BRANCH.
List helperEnv(Map ctx, def scmVars) {
    Map cfg = ctx.cfg
    List result = [
        'MLTP=' + ctx.mltp,
        'MLTP_HELPER_SH=' + ctx.helperSh,
        'MLTP_REPO=' + ctx.workspace,
        'MLTP_CONFIG=' + cfg.config,
        'MLTP_REPORT_DIR=' + ctx.workspace + '/' + REPORT_DIR,
        'MLTP_ERROR_FILE=' + ctx.errorFile,
        'MLTP_INFO_FILE=' + ctx.infoFile,
        'PYTHONUNBUFFERED=1',
    ]
    if (cfg.region) {
        result.add('MLTP_REGION=' + cfg.region)
    }
    if (cfg.defaultBranch) {
        result.add('MLTP_DEFAULT_BRANCH=' + cfg.defaultBranch)
    }
    if (cfg.scriptPython) {
        result.add('MLTP_PYTHON=' + cfg.scriptPython)
    }
    if (cfg.preflight == false) {
        result.add('MLTP_NO_PREFLIGHT=1')
    }
    // Pipeline's checkout returns GIT_COMMIT but does not export it.
    if (!env.GIT_COMMIT && scmVars instanceof Map && scmVars.GIT_COMMIT) {
        result.add('GIT_COMMIT=' + scmVars.GIT_COMMIT)
    }
    return result
}

// The info file: key=value lines written by `mltp validate` (name, schedule, state_machine, register).
Map readInfo(String infoFile) {
    Map info = [:]
    if (!fileExists(infoFile)) {
        return info
    }
    List lines = readFile(infoFile).readLines()
    for (int i = 0; i < lines.size(); i++) {
        String line = lines[i].trim()
        int eq = line.indexOf('=')
        if (line.startsWith('#') || eq <= 0) {
            continue
        }
        info[line.substring(0, eq).trim()] = line.substring(eq + 1).trim()
    }
    return info
}

def applyJobProperties(Map cfg, Map info) {
    List props = [
        disableConcurrentBuilds(abortPrevious: true),
        buildDiscarder(logRotator(numToKeepStr: '30', artifactNumToKeepStr: '30')),
    ]
    String schedule = info.schedule ?: ''
    if (schedule == 'null' || schedule == 'None') {
        schedule = ''
    }
    if (schedule && cfg.mode != 'validate') {
        if (isDefaultBranch(cfg, info)) {
            props.add(pipelineTriggers([cron(schedule)]))
            echo(PREFIX + "retraining on the schedule '${schedule}'")
        } else {
            echo(PREFIX + 'the schedule applies to the default branch only; not scheduling this branch')
        }
    }
    properties(props)
}

// The schedule belongs to the branch that registers. The helper says which that is
// (info `register`, from BRANCH_IS_PRIMARY, MLTP_DEFAULT_BRANCH, CHANGE_ID); without
// its verdict, the same rule here. Pull requests never get a schedule.
boolean isDefaultBranch(Map cfg, Map info) {
    if (env.CHANGE_ID) {
        return false
    }
    if (info.register == 'true' || info.register == 'false') {
        return info.register == 'true'
    }
    String branch = env.BRANCH_NAME ?: ''
    if (!branch) {
        return true     // not a multibranch job: it builds one branch
    }
    if (cfg.defaultBranch) {
        return branch == cfg.defaultBranch
    }
    return env.BRANCH_IS_PRIMARY == 'true'
}

def publishReport(Map ctx) {
    try {
        // The model itself stays in S3 and the registry, not in Jenkins.
        archiveArtifacts(artifacts: REPORT_DIR + '/**', excludes: REPORT_DIR + '/**/*.tar.gz', allowEmptyArchive: true)
    } catch (InterruptedException interruption) {
        throw interruption
    } catch (problem) {
        echo(PREFIX + 'warning: could not archive the report: ' + problem.getMessage())
    }
    try {
        junit(testResults: REPORT_DIR + '/junit.xml', allowEmptyResults: true)
    } catch (NoSuchMethodError noPlugin) {
        echo(PREFIX + 'the JUnit plugin is not installed: gate rules are not published as tests')
    } catch (MissingMethodException noPlugin) {
        echo(PREFIX + 'the JUnit plugin is not installed: gate rules are not published as tests')
    } catch (InterruptedException interruption) {
        throw interruption
    } catch (problem) {
        echo(PREFIX + 'warning: could not publish the gate results: ' + problem.getMessage())
    }
    boolean hasHtml = publishHtmlReport(ctx)
    try {
        String summary = ctx.workspace + '/' + REPORT_DIR + '/summary.txt'
        if (fileExists(summary)) {
            String line = mltpHelper.firstLine(readFile(summary))
            if (line) {
                currentBuild.description = hasHtml ? line + ' ' + reportLink() : line
            }
        }
    } catch (InterruptedException interruption) {
        throw interruption
    } catch (problem) {
        echo(PREFIX + 'warning: could not set the build description: ' + problem.getMessage())
    }
    pruneOnSchedule(ctx)
}

// report.html is archived with the rest; with the HTML Publisher plugin it also gets its
// own link on the job and build pages. True when there is a report.html to link to.
boolean publishHtmlReport(Map ctx) {
    if (!fileExists(ctx.workspace + '/' + REPORT_DIR + '/' + HTML_REPORT)) {
        return false
    }
    try {
        publishHTML(target: [reportDir: REPORT_DIR, reportFiles: HTML_REPORT, reportName: 'mltp report',
                             keepAll: true, alwaysLinkToLastBuild: true, allowMissing: true])
    } catch (NoSuchMethodError noPlugin) {
        echo(PREFIX + 'the HTML Publisher plugin is not installed: report.html is linked from the build description only')
    } catch (MissingMethodException noPlugin) {
        echo(PREFIX + 'the HTML Publisher plugin is not installed: report.html is linked from the build description only')
    } catch (InterruptedException interruption) {
        throw interruption
    } catch (problem) {
        echo(PREFIX + 'warning: could not publish report.html: ' + problem.getMessage())
    }
    return true
}

// A link to the archived report.html (a link with the Safe HTML markup formatter).
String reportLink() {
    String base = env.BUILD_URL ?: ''
    return '<a href="' + base + 'artifact/' + REPORT_DIR + '/' + HTML_REPORT + '">report.html</a>'
}

// On the default branch's scheduled builds, with pruneOlderThanDays set: `mltp prune --yes`.
// Housekeeping never fails the build: a problem is a warning line.
def pruneOnSchedule(Map ctx) {
    Map cfg = ctx.cfg
    if (cfg.pruneOlderThanDays == null || cfg.mode != 'aws' || !ctx.env) {
        return
    }
    if (!isDefaultBranch(cfg, readInfo(ctx.infoFile)) || !timerTriggered()) {
        return
    }
    List pruneEnv = ctx.env + ['MLTP_OLDER_THAN=' + cfg.pruneOlderThanDays + 'd']
    try {
        int rc = mltpHelper.runVerb('prune', pruneEnv, awsCredentials(cfg))
        if (rc != 0) {
            echo(PREFIX + 'warning: mltp prune failed: ' + mltpHelper.readReason(PREFIX, ctx.errorFile, 'prune', rc))
        }
    } catch (InterruptedException interruption) {
        throw interruption
    } catch (problem) {
        echo(PREFIX + 'warning: mltp prune failed: ' + problem.getMessage())
    }
}

boolean timerTriggered() {
    try {
        return currentBuild.getBuildCauses(TIMER_CAUSE).size() > 0
    } catch (InterruptedException interruption) {
        throw interruption
    } catch (problem) {
        return false    // a Jenkins too old to say: no housekeeping
    }
}

// ---------------------------------------------------------------------------
// Approval: after the node, a release manager's decision
// ---------------------------------------------------------------------------

// What the question needs, read on the agent while it is still held: the
// registered version (registration.txt) and the gate and champion tables
// (gate.txt), both written by `mltp wait`. ask=false with the reason when there
// is nothing to decide.
Map approvalFacts(Map ctx, Map info) {
    Map facts = [ask: false, workspace: ctx.workspace]
    if (ctx.cfg.mode != 'aws') {
        facts.why = "mode '${ctx.cfg.mode}' registers nothing to approve in the registry"
        return facts
    }
    if (info.register != 'true') {
        facts.why = 'this branch does not register (only the default branch does)'
        return facts
    }
    String reportDir = ctx.workspace + '/' + REPORT_DIR
    if (currentBuild.currentResult != 'SUCCESS') {
        facts.why = 'the run did not pass'
        return facts
    }
    Map registration = readInfo(reportDir + '/registration.txt')
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

def awaitApproval(Map cfg, Map facts) {
    if (facts == null || !facts.ask) {
        echo(PREFIX + 'no approval asked: ' + (facts?.why ?: 'nothing was registered'))
        return
    }
    Map approval = cfg.approval
    Map answer = null
    stage('Approval') {
        String question = "Approve ${facts.name} for deployment?\n\n${facts.gate}"
        if (facts.gate) {
            echo(facts.gate)   // the question's tables, also readable in the log
        }
        echo(PREFIX + "waiting up to ${approval.timeoutHours} h for ${approval.submitter ?: 'anyone allowed to build'} to approve or reject ${facts.name}")
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
            String line = "no decision within ${approval.timeoutHours} h: ${facts.name} stays PendingManualApproval " +
                          "(approve it later with mlApproveModel or mltp approve)"
            echo(PREFIX + line)
            currentBuild.description = (currentBuild.description ? currentBuild.description + '; ' : '') +
                                       "approval timed out: ${facts.name} stays PendingManualApproval"
            return
        }
        applyDecision(cfg, facts, answer)
    }
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

// Applies the decision on an agent: UpdateModelPackage through `mltp approve|reject`,
// with the approver's Jenkins id, credentials bound only around that call.
def applyDecision(Map cfg, Map facts, Map answer) {
    String verb = answer.decision == 'Reject' ? 'reject' : 'approve'
    String approver = answer.approver ? String.valueOf(answer.approver) : ''
    String reason = answer.reason ? String.valueOf(answer.reason).trim() : ''
    if (cfg.agent) {
        node(cfg.agent) {
            recordDecision(cfg, facts, verb, approver, reason)
        }
    } else {
        node {
            recordDecision(cfg, facts, verb, approver, reason)
        }
    }
    String done = (verb == 'approve' ? 'approved' : 'rejected') + " ${facts.name}" + (approver ? " (by ${approver})" : '')
    echo(PREFIX + done + (reason ? ': ' + reason : ''))
    currentBuild.description = (currentBuild.description ? currentBuild.description + '; ' : '') + done
}

def recordDecision(Map cfg, Map facts, String verb, String approver, String reason) {
    Map ctx = [cfg: cfg]
    checkout(scm)
    ctx.workspace = pwd()
    ctx.tmp = pwd(tmp: true) + '/mltp'
    ctx.errorFile = ctx.tmp + '/error.txt'
    Map helper = mltpHelper.install(prefix: PREFIX, tmp: ctx.tmp, errorFile: ctx.errorFile, python: cfg.python,
                                    lock: 'aws', helperCommand: cfg.helperCommand, helperPipSpec: cfg.helperPipSpec)
    List decisionEnv = [
        'MLTP=' + helper.mltp,
        'MLTP_HELPER_SH=' + helper.helperSh,
        'MLTP_REPO=' + ctx.workspace,
        'MLTP_CONFIG=' + cfg.config,
        'MLTP_ERROR_FILE=' + ctx.errorFile,
        'MLTP_MODEL_VERSION=' + facts.arn,
        'MLTP_APPROVAL_NOTE=' + reason,
        'PYTHONUNBUFFERED=1',
    ]
    if (approver) {
        decisionEnv.add('MLTP_APPROVER=' + approver)
    }
    if (cfg.region) {
        decisionEnv.add('MLTP_REGION=' + cfg.region)
    }
    int rc = mltpHelper.runVerb(verb, decisionEnv, awsCredentials(cfg))
    if (rc != 0) {
        error(PREFIX + 'could not record the decision: ' + mltpHelper.readReason(PREFIX, ctx.errorFile, verb, rc))
    }
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

Map resolveOptions(Map options) {
    Map cfg = [:]
    cfg.putAll(DEFAULTS)
    List problems = []
    List keys = new ArrayList(options.keySet())
    for (int i = 0; i < keys.size(); i++) {
        String key = String.valueOf(keys[i])
        if (!DEFAULTS.containsKey(key)) {
            problems.add("unknown option '${key}'" + suggestion(key))
            continue
        }
        def value = options[keys[i]]
        if (value instanceof CharSequence) {
            value = value.toString()
        }
        if (value != null) {
            cfg[key] = value
        }
    }

    List stringKeys = ['config', 'mode', 'agent', 'region', 'credentialsId', 'onGateFailure',
                       'helperCommand', 'helperPipSpec', 'python', 'scriptPython', 'defaultBranch', 'triggerRoleArn']
    for (int i = 0; i < stringKeys.size(); i++) {
        String key = stringKeys[i]
        if (cfg[key] != null && !(cfg[key] instanceof String)) {
            problems.add("${key} must be a string")
            cfg[key] = DEFAULTS[key]
        } else if (cfg[key] != null && cfg[key].trim() == '') {
            cfg[key] = DEFAULTS[key]
            if (cfg[key] != null) {
                problems.add("${key} must not be empty")
            }
        }
    }

    cfg.mode = cfg.mode.toLowerCase()
    if (!MODES.contains(cfg.mode)) {
        problems.add("mode must be one of ${MODES.join(', ')}, not '${cfg.mode}'")
    }
    cfg.onGateFailure = cfg.onGateFailure.toUpperCase()
    if (!GATE_RESULTS.contains(cfg.onGateFailure)) {
        problems.add("onGateFailure must be FAILURE or UNSTABLE, not '${cfg.onGateFailure}'")
    }
    if (cfg.region && !(cfg.region ==~ /[a-z]{2}(-[a-z]+)+-[0-9]+/)) {
        problems.add("region '${cfg.region}' is not an AWS region name (like eu-west-1)")
    }
    if (!(cfg.preflight instanceof Boolean)) {
        problems.add("preflight must be true or false, not '${cfg.preflight}'")
        cfg.preflight = DEFAULTS.preflight
    }
    if (!(cfg.retrainTrigger instanceof Boolean)) {
        problems.add("retrainTrigger must be true or false, not '${cfg.retrainTrigger}'")
        cfg.retrainTrigger = false
    }
    if (cfg.triggerRoleArn && !(cfg.triggerRoleArn ==~ /arn:aws[a-z-]*:iam::[0-9]{12}:role\/[\w+=,.@\/-]+/)) {
        problems.add("triggerRoleArn '${cfg.triggerRoleArn}' is not an IAM role ARN")
    }
    if (cfg.helperCommand && cfg.helperPipSpec) {
        problems.add('give helperCommand or helperPipSpec, not both')
    }

    if (cfg.approval != null) {
        cfg.approval = resolveApproval(cfg.approval, problems)
    }

    def minutes = cfg.timeoutMinutes
    if (minutes instanceof String && minutes ==~ /[0-9]{1,9}/) {
        minutes = Integer.parseInt(minutes)
    }
    if (!(minutes instanceof Integer || minutes instanceof Long) || minutes < 1) {
        problems.add("timeoutMinutes must be a whole number of minutes, at least 1, not '${cfg.timeoutMinutes}'")
        minutes = DEFAULTS.timeoutMinutes
    }
    if (minutes > MAX_TIMEOUT_MINUTES) {
        echo(PREFIX + "timeoutMinutes ${minutes} is more than the maximum; using ${MAX_TIMEOUT_MINUTES}")
        minutes = MAX_TIMEOUT_MINUTES
    }
    cfg.timeoutMinutes = (int) minutes

    def days = cfg.pruneOlderThanDays
    if (days != null && !((days instanceof Integer || days instanceof Long) && days >= 1 && days <= 3650)) {
        problems.add("pruneOlderThanDays must be a whole number of days from 1 to 3650, not '${days}'")
    }

    if (problems) {
        error(PREFIX + 'invalid options: ' + problems.join('; '))
    }
    return cfg
}

// approval: [submitter: 'group or user ids, comma separated', timeoutHours: 72].
Map resolveApproval(def given, List problems) {
    if (!(given instanceof Map)) {
        problems.add("approval must be a map like [submitter: 'release-managers', timeoutHours: 72]")
        return null
    }
    Map approval = [submitter: null, timeoutHours: 72]
    List keys = new ArrayList(given.keySet())
    for (int i = 0; i < keys.size(); i++) {
        String key = String.valueOf(keys[i])
        if (!approval.containsKey(key)) {
            problems.add("approval: unknown key '${key}' (known: submitter, timeoutHours)")
        } else if (given[keys[i]] != null) {
            approval[key] = given[keys[i]]
        }
    }
    if (approval.submitter != null) {
        approval.submitter = String.valueOf(approval.submitter).trim() ?: null
    }
    def hours = approval.timeoutHours
    if (hours instanceof String && hours ==~ /[0-9]{1,5}/) {
        hours = Integer.parseInt(hours)
    }
    if (!(hours instanceof Integer || hours instanceof Long) || hours < 1 || hours > 24 * 30) {
        problems.add("approval.timeoutHours must be a whole number of hours from 1 to 720, not '${approval.timeoutHours}'")
        hours = 72
    }
    approval.timeoutHours = (int) hours
    return approval
}

// " (did you mean 'x'?)" for an unknown option close to a known one.
String suggestion(String key) {
    List known = new ArrayList(DEFAULTS.keySet())
    String best = null
    int bestDistance = 4
    for (int i = 0; i < known.size(); i++) {
        int d = editDistance(key.toLowerCase(), known[i].toLowerCase())
        if (d < bestDistance) {
            bestDistance = d
            best = known[i]
        }
    }
    return best ? " (did you mean '" + best + "'?)" : ' (known options: ' + known.join(', ') + ')'
}

int editDistance(String a, String b) {
    List previous = []
    for (int j = 0; j <= b.length(); j++) {
        previous.add(j)
    }
    for (int i = 1; i <= a.length(); i++) {
        List current = [i]
        for (int j = 1; j <= b.length(); j++) {
            int cost = a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1
            current.add(Math.min(Math.min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost))
        }
        previous = current
    }
    return previous[b.length()]
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

String remainingMinutes(int timeoutMinutes, long started) {
    long elapsed = (System.currentTimeMillis() - started).intdiv(60000)
    long remaining = timeoutMinutes - elapsed - 1   // let the helper time out first, with a clean report
    return String.valueOf(remaining < 1 ? 1 : remaining)
}
