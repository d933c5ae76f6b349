package app

import (
	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/cloudlogging"
	"github.com/auditstream/auditstream/internal/destination/gcsdest"
	"github.com/auditstream/auditstream/internal/destination/httpdest"
	"github.com/auditstream/auditstream/internal/destination/s3dest"
	"github.com/auditstream/auditstream/internal/destination/splunkhec"
)

// Senders maps every destination category to the package that delivers to it. A category
// without one can be configured but shows status "error"; TestEveryCategoryHasASender keeps the
// map complete.
func Senders() map[string]destination.Factory {
	return map[string]destination.Factory{
		destination.CategoryHTTP:   httpdest.New,
		destination.CategoryAWS:    s3dest.New,
		destination.CategoryGCP:    cloudlogging.New,
		destination.CategoryGCS:    gcsdest.New,
		destination.CategorySplunk: splunkhec.New,
	}
}
