package org.jenkinsci.plugins.workflow.steps

// Stand-in for Jenkins' class of the same name: thrown into a running step when the
// build is aborted or a timeout fires. Like the real one it extends InterruptedException
// and carries the result the build ends with.
class FlowInterruptedException extends InterruptedException {
    final String result

    FlowInterruptedException(String result = 'ABORTED', String cause = 'aborted by a user') {
        super(cause)
        this.result = result
    }
}
