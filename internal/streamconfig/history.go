package streamconfig

import "github.com/auditstream/auditstream/internal/delivery"

// historian is the optional part of Engine that keeps destinations' recent deliveries
// (delivery.Engine); an Engine without it has no history to show.
type historian interface {
	History(id int64) delivery.History
}

// History returns the recent deliveries, failures and backlog of d, a destination the caller
// read through an authorized call (Overview, Get): it checks nothing again. ok is false when
// the engine keeps no history.
func (s *Service) History(d Destination) (h delivery.History, ok bool) {
	e, ok := s.Engine.(historian)
	if !ok {
		return delivery.History{}, false
	}
	return e.History(d.ID), true
}
