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

// The verbs helper.sh accepts; keep in step with its case list.
@Field final List VERBS = ['validate', 'sync', 'deploy', 'publish', 'start', 'wait', 'stop', 'run', 'prune',
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

// Options of the small steps (mlApproveModel, mlFetchModel): DEFAULTS plus the
// given ones; unknown keys, non-strings among stringKeys and blank strings are
// added to `problems`, which the step reports in one error line with its own.
Map resolveOptions(Map defaults, Map options, List stringKeys, List problems) {
    Map cfg = [:]
    cfg.putAll(defaults)
    Map given = options == null ? [:] : options
    List keys = new ArrayList(given.keySet())
    for (int i = 0; i < keys.size(); i++) {
        String key = String.valueOf(keys[i])
        if (!defaults.containsKey(key)) {
            problems.add("unknown option '${key}' (known options: ${new ArrayList(defaults.keySet()).join(', ')})")
            continue
        }
        def value = given[keys[i]]
        if (value instanceof CharSequence) {
            value = value.toString()
        }
        if (value != null) {
            cfg[key] = value
        }
    }
    for (int i = 0; i < stringKeys.size(); i++) {
        String key = stringKeys[i]
        if (cfg[key] != null && !(cfg[key] instanceof String)) {
            problems.add("${key} must be a string")
        } else if (cfg[key] != null && cfg[key].trim() == '') {
            problems.add("${key} must not be empty")
        }
    }
    if (cfg.helperCommand && cfg.helperPipSpec) {
        problems.add('give helperCommand or helperPipSpec, not both')
    }
    if (cfg.region && !(cfg.region ==~ /[a-z]{2}(-[a-z]+)+-[0-9]+/)) {
        problems.add("region '${cfg.region}' is not an AWS region name (like eu-west-1)")
    }
    if (cfg.modelPackageGroup && !cfg.region) {
        problems.add('modelPackageGroup needs region (there is no config.yaml to read it from)')
    }
    return cfg
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
