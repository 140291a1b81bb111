package hudson

// Stand-in for Jenkins' hudson.AbortException: what `error` and failing steps throw.
class AbortException extends IOException {
    AbortException(String message) {
        super(message)
    }
}
