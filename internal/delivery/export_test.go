package delivery

// Behind reports how many destinations the next positions snapshot looks at.
func (e *Engine) Behind() int {
	e.behind.mu.Lock()
	defer e.behind.mu.Unlock()
	return len(e.behind.dests)
}
