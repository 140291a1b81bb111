package org.jenkinsci.plugins.workflow.steps

// Stand-in for Jenkins' class of the same name: thrown into a running step when the
// build is aborted or a timeout fires. Like the real one it extends InterruptedException
// and carries the result the build ends with, and its causes (getCauses()).
class FlowInterruptedException extends InterruptedException {
    final String result
    final List causes

    FlowInterruptedException(String result = 'ABORTED', String cause = 'aborted by a user', List causes = []) {
        super(cause)
        this.result = result
        this.causes = causes
    }

    List getCauses() { causes }
}
