package eventlog

// TailBuffer is tailBuffer, for the tests of readers that fall behind the tail.
const TailBuffer = tailBuffer
