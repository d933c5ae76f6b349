package graphql

import (
	"time"

	"github.com/auditstream/auditstream/internal/api/graphql/model"
	"github.com/auditstream/auditstream/internal/streamconfig"
)

// retentionModel says a retention in whole days (a duration not of whole days, from a flag,
// rounded up); nil for none or forever.
func retentionModel(r streamconfig.Retention) *model.AuditEventRetention {
	days := func(d time.Duration) *int {
		if d <= 0 {
			return nil
		}
		n := int((d + streamconfig.Day - 1) / streamconfig.Day)
		return &n
	}
	return &model.AuditEventRetention{GroupPath: r.Group.FullPath, Days: days(r.Own), EffectiveDays: days(r.Effective()),
		InstanceDefaultDays: days(r.Bounds.Default), MinDays: r.Bounds.MinDays(), MaxDays: days(time.Duration(r.Bounds.MaxDays()) * streamconfig.Day)}
}
