// mlFetchModel(): the approved model for a deployment pipeline. Call it inside
// node { }: it downloads the newest Approved version's model.tar.gz (or the one
// named by `version`) into `to`, verifies it against the SHA-256 recorded at
// registration, writes model-package.json beside it, and returns
// [arn:, group:, version:, status:, model:, manifest:, sha256:].
//
// Same runner as the other steps (vars/mltpHelper.groovy): bundled helper,
// values only in the environment, AWS credentials only around the download,
// one-line errors "[mlFetchModel] <reason>".

import groovy.transform.Field

@Field final Map DEFAULTS = [
    version          : null,           // null = the newest Approved version; else N, 'group/N' or an ARN
    to               : 'model',        // folder, relative to the workspace, for model.tar.gz and model-package.json
    modelPackageGroup: null,           // the group (with region); null = registry of config.yaml in the workspace
    region           : null,           // AWS region; null = aws.region of the config
    config           : 'config.yaml',  // the model repo's config, when modelPackageGroup is null
    credentialsId    : null,           // Jenkins "AWS Credentials" id; null = the agent's own role
    python           : 'python3',
    helperCommand    : null,
    helperPipSpec    : null,
]
@Field final String PREFIX = '[mlFetchModel] '
@Field final List STRINGS = ['to', 'modelPackageGroup', 'region', 'config', 'credentialsId', 'python', 'helperCommand',
                             'helperPipSpec']

Map call(Map options = [:]) {
    List problems = []
    Map cfg = mltpHelper.resolveOptions(DEFAULTS, options, STRINGS, problems)
    if (cfg.version != null && !(cfg.version instanceof Integer || cfg.version instanceof Long || cfg.version instanceof String)) {
        problems.add('version must be a number or a string')
    }
    if (problems) {
        error(PREFIX + 'invalid options: ' + problems.join('; '))
    }
    String workspace = pwd()
    String tmp = pwd(tmp: true) + '/mltp'
    String errorFile = tmp + '/error.txt'
    String infoFile = tmp + '/fetch.txt'
    Map helper = mltpHelper.install(prefix: PREFIX, tmp: tmp, errorFile: errorFile, python: cfg.python, lock: 'aws',
                                    helperCommand: cfg.helperCommand, helperPipSpec: cfg.helperPipSpec)
    List verbEnv = mltpHelper.registryEnv(cfg, helper, workspace, errorFile)
    verbEnv.add('MLTP_FETCH_DIR=' + (cfg.to.startsWith('/') ? cfg.to : workspace + '/' + cfg.to))
    verbEnv.add('MLTP_INFO_FILE=' + infoFile)
    if (cfg.version != null) {
        verbEnv.add('MLTP_MODEL_VERSION=' + String.valueOf(cfg.version))
    }
    int rc = mltpHelper.runVerb('fetch-model', verbEnv, cfg.credentialsId ? [credentialsId: cfg.credentialsId] : null)
    if (rc != 0) {
        String reason = mltpHelper.readReason(PREFIX, errorFile, 'fetch-model', rc)
        error(PREFIX + (rc == 5 && reason.contains('SHA-256') ? 'checksum check failed: ' + reason : reason))
    }
    Map fetched = [:]
    List lines = readFile(infoFile).readLines()
    for (int i = 0; i < lines.size(); i++) {
        int eq = lines[i].indexOf('=')
        if (eq > 0) {
            fetched[lines[i].substring(0, eq)] = lines[i].substring(eq + 1)
        }
    }
    echo(PREFIX + "fetched ${fetched.group}/${fetched.version} (${fetched.status}) to ${fetched.model}, SHA-256 verified")
    return fetched
}
