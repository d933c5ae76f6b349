package splunkhec

import "net/http"

// outcome is what a HEC status code means for a Send.
type outcome uint8

const (
	accepted  outcome = iota // the events were accepted
	permanent                // sending the same events again cannot succeed
	retryable                // try again after a backoff
	throttled                // HEC asked us to slow down: wait without counting an attempt
)

// codeInfo describes one HEC status code: the HTTP status Splunk answers it with, Splunk's
// text, what it means for a Send, and what the destination's owner can do about it.
type codeInfo struct {
	status  int
	text    string
	outcome outcome
	hint    string
}

// hecCodes are the status codes of Splunk's HTTP Event Collector ("Troubleshoot HTTP Event
// Collector", Splunk Enterprise Getting Data In manual). Every HEC response body is
// {"text":"...","code":N}. Codes 17 to 22 come from /services/collector/health, 14 from
// /services/collector/ack. 24 to 27 are the capacity codes of recent Splunk versions.
var hecCodes = map[int]codeInfo{
	0: {http.StatusOK, "Success", accepted, ""},
	1: {http.StatusForbidden, "Token disabled", permanent,
		"the HEC token is disabled in Splunk; enable it (Settings > Data inputs > HTTP Event Collector) or give the destination another token"},
	2: {http.StatusUnauthorized, "Token is required", permanent,
		"Splunk received no HEC token; give the destination its HEC token"},
	3: {http.StatusUnauthorized, "Invalid authorization", permanent,
		"Splunk could not read the Authorization header; check that the destination's token is the bare HEC token, without the \"Splunk \" prefix"},
	4: {http.StatusForbidden, "Invalid token", permanent,
		"Splunk does not know this HEC token; check the destination's token"},
	5: {http.StatusBadRequest, "No data", permanent, "Splunk received an empty request"},
	6: {http.StatusBadRequest, "Invalid data format", permanent,
		"Splunk could not read the events as HEC JSON"},
	7: {http.StatusBadRequest, "Incorrect index", permanent,
		"the HEC token may not write to the index; add it to the token's allowed indexes in Splunk or change the destination's index"},
	8: {http.StatusInternalServerError, "Internal server error", retryable, ""},
	9: {http.StatusServiceUnavailable, "Server is busy", throttled,
		"the HEC queues are full; auditstream waits before sending again"},
	10: {http.StatusBadRequest, "Data channel is missing", permanent,
		"the HEC token has indexer acknowledgement turned on; set ack to true in the destination's config, or turn indexer acknowledgement off for the token"},
	11: {http.StatusBadRequest, "Invalid data channel", permanent,
		"Splunk did not accept the request channel"},
	12: {http.StatusBadRequest, "Event field is required", permanent, ""},
	13: {http.StatusBadRequest, "Event field cannot be blank", permanent, ""},
	14: {http.StatusBadRequest, "ACK is disabled", permanent,
		"the HEC token has indexer acknowledgement turned off; turn it on for the token, or set ack to false in the destination's config"},
	15: {http.StatusBadRequest, "Error in handling indexed fields", permanent, ""},
	16: {http.StatusBadRequest, "Query string authorization is not enabled", permanent,
		"remove the token from the destination's URL: auditstream sends the token in the Authorization header"},
	17: {http.StatusOK, "HEC is healthy", accepted, ""},
	18: {http.StatusServiceUnavailable, "HEC is unhealthy, queues are full", throttled,
		"the HEC queues are full; auditstream waits before sending again"},
	19: {http.StatusServiceUnavailable, "HEC is unhealthy, ack service unavailable", throttled,
		"the indexer acknowledgement service is unavailable; auditstream waits before sending again"},
	20: {http.StatusServiceUnavailable, "HEC is unhealthy, queues are full, ack service unavailable", throttled,
		"the HEC queues are full; auditstream waits before sending again"},
	21: {http.StatusBadRequest, "Invalid token", permanent,
		"Splunk does not know this HEC token; check the destination's token"},
	22: {http.StatusBadRequest, "Token disabled", permanent,
		"the HEC token is disabled in Splunk; enable it or give the destination another token"},
	23: {http.StatusServiceUnavailable, "Server is shutting down", retryable, ""},
	24: {http.StatusOK, "HEC queue is approaching its capacity limit", accepted, ""},
	25: {http.StatusOK, "HEC ACK is approaching its capacity limit", accepted, ""},
	26: {http.StatusTooManyRequests, "HEC queue is at capacity and cannot process any more requests", throttled,
		"the HEC queues are full; auditstream waits before sending again"},
	27: {http.StatusTooManyRequests, "HEC ACK channel is at capacity and cannot process any more requests", throttled,
		"too many requests wait for indexer acknowledgement; auditstream waits before sending again"},
}
