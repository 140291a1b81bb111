// mltpHelper: the one runner the mltp steps share, in the manner of Piper's
// shared executor. It installs the bundled `mltp` helper on the agent and runs
// its verbs; the steps (mlTrainingPipeline, ...) only name their options and
// credentials and map the helper's exit codes to build results.
//
// Rules this file keeps (tests/vars/ checks them):
//  - The shell scripts are files in resources/mltp/ (install.sh, helper.sh),
//    written to the agent and run by constant text; values reach them only as
//    withEnv variables, never inside a script.
//  - AWS secrets arrive only through withCredentials, and only around the
//    calls that need AWS.
//  - CPS-safe Groovy: no JsonSlurper, no closures passed to collection
//    methods, no @NonCPS methods.

import groovy.transform.Field

// The only text ever given to sh: each runs a script file the step wrote to the
// agent. The #!/bin/sh line keeps Jenkins from echoing every command (sh -x).
@Field final String INSTALL_SH = '#!/bin/sh\nexec /bin/sh "$MLTP_INSTALL_SH"\n'
@Field final String HELPER_SH = '#!/bin/sh\nexec /bin/sh "$MLTP_HELPER_SH"\n'

// VERBS: every helper verb a step may run, in one place. helper.sh accepts exactly
// these (tests/vars checks its case list against this list); each is a command of
// the mltp CLI (`trigger-install` is `mltp trigger install`).
@Field final List VERBS = ['validate', 'sync', 'deploy', 'publish', 'start', 'wait', 'stop', 'run', 'resume', 'prune',
                           'trigger-install', 'models', 'approve', 'reject', 'fetch-model']

// The hash-pinned requirements for each kind of install: the local mode needs
// the embedded AWS emulator, the others never load it.
@Field final Map LOCKS = [aws: 'requirements-aws.txt', local: 'requirements-local.txt']

// What the helper's exit codes mean (docs/contract.md, exit codes), for fallback messages.
@Field final Map EXIT_MEANINGS = [
    1: 'the mltp helper hit an internal error',
    2: 'invalid input',
    3: 'the metric gate failed',
    4: 'the run failed',
    5: 'AWS refused the request or could not be reached',
    126: 'the mltp helper is not executable',
    127: 'the mltp helper was not found',
]

// Makes the helper usable on this agent. opts:
//   prefix         the calling step's '[name] ' for its lines
//   tmp            a scratch folder of the build (pwd(tmp: true) + '/mltp')
//   errorFile      where install.sh and the helper write their one-line reason
//   python         the interpreter that builds the helper's virtualenv
//   lock           'aws' or 'local': which pinned requirements to install
//   helperCommand  a pre-installed helper: nothing is installed
//   helperPipSpec  install this pip requirement instead of the bundled wheel
// Returns [mltp: path of the helper, helperSh: path of helper.sh].
Map install(Map opts) {
    String prefix = opts.prefix
    Map result = [helperSh: writeResource('mltp/helper.sh', opts.tmp + '/helper.sh')]
    if (opts.helperCommand) {
        echo(prefix + 'using the pre-installed helper ' + opts.helperCommand)
        result.mltp = opts.helperCommand
        return result
    }
    String outFile = opts.tmp + '/helper-path.txt'
    String bundleDir = opts.tmp + '/bundle'
    List installEnv = [
        'MLTP_INSTALL_SH=' + writeResource('mltp/install.sh', bundleDir + '/install.sh'),
        'MLTP_INSTALL_PYTHON=' + opts.python,
        'MLTP_INSTALL_OUT=' + outFile,
        'MLTP_ERROR_FILE=' + opts.errorFile,
    ]
    if (opts.helperPipSpec) {
        installEnv.add('MLTP_INSTALL_PIP_SPEC=' + opts.helperPipSpec)
    } else {
        Map bundle = writeBundle(prefix, bundleDir, opts.lock)
        installEnv.add('MLTP_INSTALL_WHEEL=' + bundle.wheel)
        installEnv.add('MLTP_INSTALL_REQUIREMENTS=' + bundle.requirements)
        installEnv.add('MLTP_INSTALL_VERIFIER=' + bundle.verifier)
    }
    int rc = 0
    withEnv(installEnv) {
        rc = sh(script: INSTALL_SH, returnStatus: true, label: 'install the mltp helper')
    }
    if (rc != 0) {
        error(prefix + 'could not install the mltp helper: ' + readReason(prefix, opts.errorFile, 'install', rc))
    }
    String path = fileExists(outFile) ? firstLine(readFile(outFile)) : ''
    if (!path) {
        error(prefix + 'could not install the mltp helper: the installer reported no path')
    }
    result.mltp = path
    return result
}

// Copies the bundled wheel, the lock of this kind of install and the cache
// verifier from the library to the agent.
Map writeBundle(String prefix, String bundleDir, String lock) {
    String lockName = LOCKS[lock]
    if (lockName == null) {
        error(prefix + "unknown kind of install '${lock}'")
    }
    String wheel = ''
    String wheelBase64 = null
    String requirements = null
    String problem = null
    try {
        wheel = firstLine(libraryResource('mltp/bundle.txt'))
        if (wheel ==~ /mltp-[A-Za-z0-9_.+!]+-py3-none-any\.whl/) {
            wheelBase64 = libraryResource(resource: 'mltp/' + wheel, encoding: 'Base64')
            requirements = libraryResource('mltp/' + lockName)
        } else {
            problem = 'resources/mltp/bundle.txt names no helper wheel'
        }
    } catch (InterruptedException interruption) {
        throw interruption
    } catch (missing) {
        problem = 'this copy of the library has no bundled helper (resources/mltp/)'
    }
    if (problem) {
        error(prefix + "${problem}; set helperCommand or helperPipSpec")
    }
    Map bundle = [wheel: bundleDir + '/' + wheel, requirements: bundleDir + '/' + lockName]
    writeFile(file: bundle.wheel, text: wheelBase64, encoding: 'Base64')
    writeFile(file: bundle.requirements, text: requirements)
    bundle.verifier = writeResource('mltp/verify-helper.py', bundleDir + '/verify-helper.py')
    return bundle
}

String writeResource(String resource, String path) {
    writeFile(file: path, text: libraryResource(resource))
    return path
}

// Runs one helper verb with helper.sh and returns its exit code. env: the
// KEY=value list every verb gets (MLTP, MLTP_HELPER_SH, MLTP_REPO, ...);
// credentials: [credentialsId: ...] when the verb talks to AWS with Jenkins
// credentials, else null. An interruption propagates unwrapped.
int runVerb(String verb, List env, Map credentials) {
    if (!VERBS.contains(verb)) {
        error("mltpHelper: unknown verb '${verb}'")
    }
    int rc = 0
    withEnv(env + ['MLTP_VERB=' + verb]) {
        withAws(credentials) {
            rc = sh(script: HELPER_SH, returnStatus: true, label: 'mltp ' + verb)
        }
    }
    return rc
}

def withAws(Map credentials, Closure body) {
    if (credentials && credentials.credentialsId) {
        withCredentials([[$class: 'AmazonWebServicesCredentialsBinding', credentialsId: credentials.credentialsId,
                          accessKeyVariable: 'AWS_ACCESS_KEY_ID', secretKeyVariable: 'AWS_SECRET_ACCESS_KEY']]) {
            body()
        }
    } else {
        body()
    }
}

// The one-line reason of a failed verb: the helper's error file, else what the exit code means.
String readReason(String prefix, String errorFile, String verb, int rc) {
    String reason = ''
    if (fileExists(errorFile)) {
        reason = firstLine(readFile(errorFile))
    }
    if (reason.startsWith(prefix)) {
        reason = reason.substring(prefix.length()).trim()
    }
    if (reason) {
        return reason
    }
    String meaning = EXIT_MEANINGS[rc] ?: 'unexpected exit code'
    return 'mltp ' + verb + ' failed with exit code ' + rc + ' (' + meaning + '); see the log above'
}

String firstLine(String text) {
    if (text == null) {
        return ''
    }
    List lines = text.readLines()
    for (int i = 0; i < lines.size(); i++) {
        String line = lines[i].trim()
        if (line) {
            return line.length() > 1000 ? line.substring(0, 1000) + '...' : line
        }
    }
    return ''
}

// The environment of a registry verb (models, approve, reject, fetch-model) run
// in the current workspace: the repo's config.yaml, or modelPackageGroup + region.
List registryEnv(Map cfg, Map helper, String workspace, String errorFile) {
    List result = [
        'MLTP=' + helper.mltp,
        'MLTP_HELPER_SH=' + helper.helperSh,
        'MLTP_REPO=' + workspace,
        'MLTP_ERROR_FILE=' + errorFile,
        'PYTHONUNBUFFERED=1',
    ]
    if (cfg.modelPackageGroup) {
        result.add('MLTP_MODEL_PACKAGE_GROUP=' + cfg.modelPackageGroup)
    } else {
        result.add('MLTP_CONFIG=' + cfg.config)
    }
    if (cfg.region) {
        result.add('MLTP_REGION=' + cfg.region)
    }
    return result
}

// ---------------------------------------------------------------------------
// Options: one table for the three steps
// ---------------------------------------------------------------------------

// Every option of mlTrainingPipeline, mlApproveModel and mlFetchModel: its default,
// what it accepts, a one-line summary and the steps that take it. resolveOptions
// reads it for all three; the help pages (vars/*.txt) and docs/contract.md 9.4 must
// list exactly these options with these defaults (tests/vars/OptionsTest.groovy).
//   type    'string' (default; a non-blank string), 'boolean', 'whole' (a whole
//           number, numeric strings too, from min to max; cap: a larger one is
//           lowered to max with a line in the log), 'version' (a number or a
//           string), 'map' (with fields, a table of its own), 'text' (any value,
//           trimmed, blank = null), 'closure' (a { } block the step calls)
//   oneOf   the accepted values of a string; fold: 'lower'|'upper' first
//   pattern with patternDoc: what the string must look like
@Field final Map OPTIONS = [
    config            : [default: 'config.yaml', steps: ['mlTrainingPipeline', 'mlApproveModel', 'mlFetchModel'],
                         doc: 'the model repo\'s config, relative to the repo root (or absolute)'],
    mode              : [default: 'aws', oneOf: ['aws', 'local', 'validate'], fold: 'lower', steps: ['mlTrainingPipeline'],
                         doc: 'aws: Step Functions and SageMaker; local: the agent with an embedded AWS emulator; validate: checks only'],
    agent             : [default: null, steps: ['mlTrainingPipeline', 'mlApproveModel'],
                         doc: 'node label to run on; null = any agent'],
    region            : [default: null, pattern: /[a-z]{2}(-[a-z]+)+-[0-9]+/, patternDoc: 'an AWS region name (like eu-west-1)',
                         steps: ['mlTrainingPipeline', 'mlApproveModel', 'mlFetchModel'],
                         doc: 'AWS region; null = aws.region of the config'],
    credentialsId     : [default: null, steps: ['mlTrainingPipeline', 'mlApproveModel', 'mlFetchModel'],
                         doc: 'Jenkins "AWS Credentials" id, bound only around the calls that reach AWS; null = the agent\'s own role'],
    timeoutMinutes    : [default: 180, type: 'whole', unit: 'minutes', min: 1, max: 24 * 60, cap: true, steps: ['mlTrainingPipeline'],
                         doc: 'the whole build, waiting for an agent included'],
    onGateFailure     : [default: 'FAILURE', oneOf: ['FAILURE', 'UNSTABLE'], fold: 'upper', steps: ['mlTrainingPipeline'],
                         doc: 'build result when the metric gate fails'],
    helperCommand     : [default: null, steps: ['mlTrainingPipeline', 'mlApproveModel', 'mlFetchModel'],
                         doc: 'path of a pre-installed mltp; nothing gets installed'],
    helperPipSpec     : [default: null, steps: ['mlTrainingPipeline', 'mlApproveModel', 'mlFetchModel'],
                         doc: 'pip requirement such as mltp==0.1.0: installed instead of the bundled wheel'],
    python            : [default: 'python3', steps: ['mlTrainingPipeline', 'mlApproveModel', 'mlFetchModel'],
                         doc: 'Python 3.9+ on the agent that installs the helper'],
    scriptPython      : [default: null, steps: ['mlTrainingPipeline'],
                         doc: 'mode local: the Python that runs the scripts; null = the helper builds a cached virtualenv per framework'],
    allowNearest      : [default: false, type: 'boolean', steps: ['mlTrainingPipeline'],
                         doc: 'mode local: where the framework\'s own package has no build of the container\'s major version ' +
                              'for the agent\'s Python, use the nearest that installs instead of failing'],
    defaultBranch     : [default: null, steps: ['mlTrainingPipeline'],
                         doc: 'the branch that registers and retrains on schedule; null = the multibranch primary branch'],
    preflight         : [default: true, type: 'boolean', steps: ['mlTrainingPipeline'],
                         doc: 'mode aws: check the account read-only before anything is deployed'],
    pruneOlderThanDays: [default: null, type: 'whole', unit: 'days', min: 1, max: 3650, steps: ['mlTrainingPipeline'],
                         doc: 'scheduled default-branch builds also run mltp prune --yes for this age; null = never'],
    resume            : [default: false, type: 'boolean', steps: ['mlTrainingPipeline'],
                         doc: 'Train goes on from this branch\'s newest failed run (mltp resume) instead of starting afresh'],
    retrainTrigger    : [default: false, type: 'boolean', steps: ['mlTrainingPipeline'],
                         doc: 'mode aws, default branch: install the retrain-on-new-data trigger after Train'],
    triggerRoleArn    : [default: null, pattern: /arn:aws[a-z-]*:iam::[0-9]{12}:role\/[\w+=,.@\/-]+/, patternDoc: 'an IAM role ARN',
                         steps: ['mlTrainingPipeline'],
                         doc: 'with retrainTrigger: the trigger function\'s role; null = create mltp-trigger-<name>'],
    approval          : [default: null, type: 'map', example: "[submitter: 'release-managers', timeoutHours: 72]",
                         fields: [submitter   : [default: null, type: 'text'],
                                  timeoutHours: [default: 72, type: 'whole', unit: 'hours', min: 1, max: 24 * 30]],
                         steps: ['mlTrainingPipeline'],
                         doc: 'ask for a decision after a registered run on the default branch; null = no question'],
    notifyApprovers   : [default: null, type: 'closure', steps: ['mlTrainingPipeline'],
                         doc: 'with approval: { m -> ... } called once the question is asked (version, metrics, links); null = no call'],
    approverEmails    : [default: null, pattern: /[^\s,@]+@[^\s,@]+(\s*,\s*[^\s,@]+@[^\s,@]+)*/,
                         patternDoc: 'e-mail addresses separated by commas', steps: ['mlTrainingPipeline'],
                         doc: 'with approval, without notifyApprovers: mail the question to them (Mailer plugin); null = no mail'],
    onOutcome         : [default: null, type: 'closure', steps: ['mlTrainingPipeline'],
                         doc: '{ r -> ... } called with the outcome at the end, also when the build fails, outside any agent'],
    version           : [default: null, type: 'version', steps: ['mlApproveModel', 'mlFetchModel'],
                         doc: 'N, group/N or a model package ARN; mlFetchModel: null = the newest Approved'],
    run               : [default: null, steps: ['mlApproveModel'],
                         doc: 'instead of version: the run (execution) that registered it'],
    decision          : [default: 'approve', oneOf: ['approve', 'reject'], steps: ['mlApproveModel'],
                         doc: 'approve or reject'],
    note              : [default: null, steps: ['mlApproveModel'],
                         doc: 'why; kept in the version\'s ApprovalDescription'],
    by                : [default: null, steps: ['mlApproveModel'],
                         doc: 'who; null = BUILD_USER_ID (build-user-vars plugin), else the agent\'s OS user'],
    modelPackageGroup : [default: null, steps: ['mlApproveModel', 'mlFetchModel'],
                         doc: 'act on this group (with region); null = the registry of the repo\'s config'],
    to                : [default: 'model', steps: ['mlFetchModel'],
                         doc: 'folder for model.tar.gz and model-package.json, relative to the workspace'],
]

// The Train stage's helper verb and its extra environment: `start` (then `wait`) in
// mode aws, `run` (--local) in mode local; with the `resume` option `resume`, which
// waits itself and, in mode local, runs against the emulator (MLTP_LOCAL=1).
Map trainVerb(Map cfg) {
    if (cfg.resume) {
        return [verb: 'resume', env: cfg.mode == 'local' ? ['MLTP_LOCAL=1'] : []]
    }
    return [verb: cfg.mode == 'local' ? 'run' : 'start', env: []]
}

// The options of one step, in the table's order.
List optionNames(String step) {
    List names = []
    List all = new ArrayList(OPTIONS.keySet())
    for (int i = 0; i < all.size(); i++) {
        if (OPTIONS[all[i]].steps.contains(step)) {
            names.add(all[i])
        }
    }
    return names
}

// The options a step was called with, checked against the table: every default
// filled in, values normalised. All problems end the build in one line
// "[step] invalid options: a; b; c", before any agent is allocated.
Map resolveOptions(String step, Map given) {
    String prefix = '[' + step + '] '
    List known = optionNames(step)
    List problems = []
    Map cfg = [:]
    for (int i = 0; i < known.size(); i++) {
        cfg[known[i]] = OPTIONS[known[i]].default
    }
    Map options = given == null ? [:] : given
    List keys = new ArrayList(options.keySet())
    for (int i = 0; i < keys.size(); i++) {
        String key = String.valueOf(keys[i])
        if (known.contains(key)) {
            cfg[key] = checkValue(prefix, key, OPTIONS[key], options[keys[i]], problems)
        } else {
            problems.add("unknown option '${key}'" + suggestion(key, known))
        }
    }
    if (cfg.helperCommand && cfg.helperPipSpec) {
        problems.add('give helperCommand or helperPipSpec, not both')
    }
    if (cfg.modelPackageGroup && !cfg.region) {
        problems.add('modelPackageGroup needs region (there is no config.yaml to read it from)')
    }
    if ((cfg.notifyApprovers != null || cfg.approverEmails) && cfg.approval == null) {
        problems.add('notifyApprovers and approverEmails need approval')
    }
    if (cfg.notifyApprovers != null && cfg.approverEmails) {
        problems.add('give notifyApprovers or approverEmails, not both (the closure may call mail itself)')
    }
    if (step == 'mlApproveModel' && (cfg.version == null) == (cfg.run == null)) {
        problems.add('give version or run (one of them)')
    }
    if (problems) {
        error(prefix + 'invalid options: ' + problems.join('; '))
    }
    return cfg
}

// One value against its entry of the table: the value to use, or the default
// with a line added to problems.
def checkValue(String prefix, String name, Map spec, Object given, List problems) {
    def value = given instanceof CharSequence ? given.toString() : given
    String type = spec.type ?: 'string'
    if (value == null) {
        return spec.default
    }
    if (type == 'text') {
        return String.valueOf(value).trim() ?: null
    }
    if (type == 'closure') {
        if (value instanceof Closure) {
            return value
        }
        problems.add("${name} must be a closure like { r -> echo r.result }")
        return spec.default
    }
    if (type == 'boolean') {
        if (value instanceof Boolean) {
            return value
        }
        problems.add("${name} must be true or false, not '${value}'")
        return spec.default
    }
    if (type == 'version') {
        if (value instanceof Integer || value instanceof Long || value instanceof String) {
            return value
        }
        problems.add("${name} must be a number or a string")
        return spec.default
    }
    if (type == 'whole') {
        return checkWhole(prefix, name, spec, value, problems)
    }
    if (type == 'map') {
        return checkMap(prefix, name, spec, value, problems)
    }
    if (!(value instanceof String)) {
        problems.add("${name} must be a string")
        return spec.default
    }
    if (value.trim() == '') {
        if (spec.default != null) {
            problems.add("${name} must not be empty")
        }
        return spec.default
    }
    if (spec.fold == 'lower') {
        value = value.toLowerCase()
    } else if (spec.fold == 'upper') {
        value = value.toUpperCase()
    }
    if (spec.oneOf && !spec.oneOf.contains(value)) {
        String choices = spec.oneOf.size() == 2 ? spec.oneOf.join(' or ') : 'one of ' + spec.oneOf.join(', ')
        problems.add("${name} must be ${choices}, not '${value}'")
    }
    if (spec.pattern && !(value ==~ spec.pattern)) {
        problems.add("${name} '${value}' is not ${spec.patternDoc}")
    }
    return value
}

def checkWhole(String prefix, String name, Map spec, Object value, List problems) {
    def number = value
    if (number instanceof String && number ==~ /[0-9]{1,9}/) {
        number = Integer.parseInt(number)
    }
    boolean whole = number instanceof Integer || number instanceof Long
    if (!whole || number < spec.min || (!spec.cap && number > spec.max)) {
        String range = spec.cap ? ", at least ${spec.min}" : " from ${spec.min} to ${spec.max}"
        problems.add("${name} must be a whole number of ${spec.unit}${range}, not '${value}'")
        return spec.default
    }
    if (number > spec.max) {
        echo(prefix + "${name} ${number} is more than the maximum; using ${spec.max}")
        number = spec.max
    }
    return (int) number
}

def checkMap(String prefix, String name, Map spec, Object value, List problems) {
    if (!(value instanceof Map)) {
        problems.add("${name} must be a map like ${spec.example}")
        return spec.default
    }
    Map fields = spec.fields
    Map result = [:]
    List names = new ArrayList(fields.keySet())
    for (int i = 0; i < names.size(); i++) {
        result[names[i]] = fields[names[i]].default
    }
    List keys = new ArrayList(value.keySet())
    for (int i = 0; i < keys.size(); i++) {
        String key = String.valueOf(keys[i])
        if (fields.containsKey(key)) {
            result[key] = checkValue(prefix, name + '.' + key, fields[key], value[keys[i]], problems)
        } else {
            problems.add("${name}: unknown key '${key}' (known: ${names.join(', ')})")
        }
    }
    return result
}

// " (did you mean 'x'?)" for an unknown option close to a known one, else the known ones.
String suggestion(String key, List known) {
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
// Small helpers the steps share
// ---------------------------------------------------------------------------

// The Jenkins credentials the AWS verbs run with; empty: the agent's own role.
Map awsCredentials(Map cfg) {
    return cfg.credentialsId ? [credentialsId: cfg.credentialsId] : [:]
}

// body on an agent with this label, or on any agent when there is none.
def onAgent(String label, Closure body) {
    def result = null
    if (label) {
        node(label) {
            result = body()
        }
    } else {
        node {
            result = body()
        }
    }
    return result
}

// Runs a step of an optional plugin (JUnit, HTML Publisher, ...) or of a newer
// Jenkins. Returns 'ok'; 'missing' when Jenkins does not have it (the line
// `missing` is written, when given); 'failed' when it failed (a warning line:
// "warning: could not <what>: <message>"). An interruption propagates.
String optionalStep(String prefix, String what, String missing, Closure body) {
    try {
        body()
        return 'ok'
    } catch (NoSuchMethodError noStep) {
        return missingStep(prefix, missing)
    } catch (MissingMethodException noStep) {
        return missingStep(prefix, missing)
    } catch (InterruptedException interruption) {
        throw interruption
    } catch (problem) {
        echo(prefix + 'warning: could not ' + what + ': ' + problem.getMessage())
        return 'failed'
    }
}

String missingStep(String prefix, String missing) {
    if (missing) {
        echo(prefix + missing)
    }
    return 'missing'
}

// The key=value lines the helper writes for the steps (--info-file, registration.txt,
// fetch-model's info): a map, empty when the file is missing. Blank lines and
// '#' comments are skipped; keys and values are trimmed.
Map readKeyValues(String path) {
    Map values = [:]
    if (!fileExists(path)) {
        return values
    }
    List lines = readFile(path).readLines()
    for (int i = 0; i < lines.size(); i++) {
        String line = lines[i].trim()
        int eq = line.indexOf('=')
        if (!line.startsWith('#') && eq > 0) {
            values[line.substring(0, eq).trim()] = line.substring(eq + 1).trim()
        }
    }
    return values
}

// Text from the helper or the run (a summary line, a reason, a model name) made safe
// for currentBuild.description, which Jenkins renders as HTML: & < > " ' escaped,
// control characters (ESC, CR, ...) and invisible format ones (bidi overrides) dropped. Only the step's own link stays HTML.
String escapeHtml(String text) {
    if (text == null) {
        return ''
    }
    StringBuilder out = new StringBuilder()
    for (int i = 0; i < text.length(); i++) {
        char c = text.charAt(i)
        String s = HTML_ESCAPES[String.valueOf(c)]
        if (s != null) {
            out.append(s)
        } else if (!Character.isISOControl(c) && Character.getType(c) != Character.FORMAT) {
            out.append(c)
        }
    }
    return out.toString()
}

// Text from the run for a plain-text message (mail, a chat): control characters other
// than line breaks and invisible format ones dropped, nothing else changed.
String plainText(String text) {
    if (text == null) {
        return ''
    }
    StringBuilder out = new StringBuilder()
    for (int i = 0; i < text.length(); i++) {
        char c = text.charAt(i)
        if (c == '\n' || (!Character.isISOControl(c) && Character.getType(c) != Character.FORMAT)) {
            out.append(c)
        }
    }
    return out.toString()
}

// What a run's report folder (docs/contract.md 9.3) tells a Jenkinsfile, read on the
// agent from the key=value files and the two text files (no JSON in CPS Groovy):
// [status:, runName:, summary:, gate:, metrics: [name: value], champion: [name:, metrics:]
// or null, modelPackageArn:, modelPackageGroup:, version:, approvalStatus:, sha256:]; a
// missing file leaves its parts null or empty.
Map readRunReport(String reportDir) {
    Map values = readKeyValues(reportDir + '/outcome.txt')
    Map registration = readKeyValues(reportDir + '/registration.txt')
    Map report = [status: values.status ?: null, runName: values.run ?: null,
                  summary: fileExists(reportDir + '/summary.txt') ? (firstLine(readFile(reportDir + '/summary.txt')) ?: null) : null,
                  gate: fileExists(reportDir + '/gate.txt') ? readFile(reportDir + '/gate.txt').trim() : '',
                  metrics: numbers(values, 'metric.'), champion: null,
                  modelPackageArn: registration.model_package_arn ?: null, modelPackageGroup: registration.group ?: null,
                  version: registration.version ?: null, approvalStatus: registration.approval_status ?: null,
                  sha256: registration.sha256 ?: null]
    if (values.champion) {
        report.champion = [name: values.champion, metrics: numbers(values, 'champion.')]
    }
    return report
}

// The entries of values whose key starts with prefix, without it: a number when the
// value is one, null when empty, else the text.
Map numbers(Map values, String prefix) {
    Map result = [:]
    List keys = new ArrayList(values.keySet())
    for (int i = 0; i < keys.size(); i++) {
        String key = keys[i]
        if (key.startsWith(prefix) && key.length() > prefix.length()) {
            String value = values[key]
            result[key.substring(prefix.length())] = value ==~ /-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?/ ? new BigDecimal(value) : (value ?: null)
        }
    }
    return result
}

@Field final Map HTML_ESCAPES = ['&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;']
