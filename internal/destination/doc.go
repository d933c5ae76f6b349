// Package destination defines what a streaming destination is: its filters now; the Destination
// contract, registry and error classification come with the delivery engine.
package destination
