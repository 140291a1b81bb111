// mlFetchModel(): the approved model for a deployment pipeline. Call it inside
// node { }: it downloads the newest Approved version's model.tar.gz (or the one
// named by `version`) into `to`, verifies it against the SHA-256 recorded at
// registration, writes model-package.json beside it, and returns
// [arn:, group:, version:, status:, model:, manifest:, sha256:].
//
// Same runner and option table as the other steps (vars/mltpHelper.groovy): bundled helper,
// values only in the environment, AWS credentials only around the download,
// one-line errors "[mlFetchModel] <reason>".

import groovy.transform.Field

@Field final String PREFIX = '[mlFetchModel] '

Map call(Map options = [:]) {
    Map cfg = mltpHelper.resolveOptions('mlFetchModel', options)
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
    int rc = mltpHelper.runVerb('fetch-model', verbEnv, mltpHelper.awsCredentials(cfg))
    if (rc != 0) {
        String reason = mltpHelper.readReason(PREFIX, errorFile, 'fetch-model', rc)
        error(PREFIX + (rc == 5 && reason.contains('SHA-256') ? 'checksum check failed: ' + reason : reason))
    }
    Map fetched = mltpHelper.readKeyValues(infoFile)
    echo(PREFIX + "fetched ${fetched.group}/${fetched.version} (${fetched.status}) to ${fetched.model}, SHA-256 verified")
    return fetched
}
