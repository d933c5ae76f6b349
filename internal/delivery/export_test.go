package delivery

// Behind reports how many destinations the next positions snapshot looks at.
func (e *Engine) Behind() int {
	e.behind.mu.Lock()
	defer e.behind.mu.Unlock()
	return len(e.behind.dests)
}

// ReadingQueued reports the bytes counted as queued for the destinations that are members of
// a reader.
func (e *Engine) ReadingQueued() int64 { return e.readingQueued.Load() }
