package hudson.remoting

// Stand-in for Jenkins remoting's ChannelClosedException: what a step throws
// when the agent's connection is gone.
class ChannelClosedException extends IOException {
    ChannelClosedException(String message) {
        super(message)
    }
}
