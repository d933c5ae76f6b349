package event

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// OCSFVersion is the version of the Open Cybersecurity Schema Framework whose classes and
// activities OCSFClasses lists (github.com/ocsf/ocsf-schema, tag 1.3.0).
const OCSFVersion = "1.3.0"

// OCSFMapping is how an event type is written in OCSF: the class and the activity, by their
// OCSF names in snake case (class "account_change", activity "password_change"). It lives in
// the type's YAML so that adding an event type adds its mapping:
//
//	ocsf: {class: account_change, activity: create}
//
// Status "failure" marks a type that records something that failed (a refused login); empty
// means it succeeded. The zero value means "not mapped".
type OCSFMapping struct {
	Class    string `yaml:"class" json:"class"`
	Activity string `yaml:"activity" json:"activity"`
	Status   string `yaml:"status,omitempty" json:"status,omitempty"`
}

// IsZero reports whether m maps nothing.
func (m OCSFMapping) IsZero() bool { return m == OCSFMapping{} }

// OCSFClass is one OCSF event class a type can map to.
type OCSFClass struct {
	Name         string // snake case, as in the YAML
	Caption      string // "Account Change"
	UID          int    // class_uid
	CategoryUID  int    // category_uid
	CategoryName string // category_name
	// Activities are the class's activities, snake case name → activity_id. Every class also
	// has "other" (99), whose activity_name is then the event type.
	Activities map[string]int
	// ActivityCaptions are the activities' activity_name values, by activity_id.
	ActivityCaptions map[int]string
}

// OCSFOther is the activity_id of the activity every class has for what it does not name.
const OCSFOther = 99

// ocsfClass builds an OCSFClass from its activities' captions in activity_id order from 1.
func ocsfClass(name, caption string, uid, catUID int, catName string, activities ...string) *OCSFClass {
	c := &OCSFClass{Name: name, Caption: caption, UID: uid, CategoryUID: catUID, CategoryName: catName,
		Activities: map[string]int{"other": OCSFOther}, ActivityCaptions: map[int]string{OCSFOther: "Other"}}
	for i, a := range activities {
		c.Activities[strings.ReplaceAll(strings.ToLower(a), " ", "_")] = i + 1
		c.ActivityCaptions[i+1] = a
	}
	return c
}

// ocsfClasses are the OCSF 1.3.0 classes GitLab's audit events map to, with their uids and
// activities as the schema defines them (events/iam/*.json, events/application/api.json).
var ocsfClasses = map[string]*OCSFClass{
	"account_change": ocsfClass("account_change", "Account Change", 3001, 3, "Identity & Access Management",
		"Create", "Enable", "Password Change", "Password Reset", "Disable", "Delete", "Attach Policy",
		"Detach Policy", "Lock", "MFA Factor Enable", "MFA Factor Disable"),
	"authentication": ocsfClass("authentication", "Authentication", 3002, 3, "Identity & Access Management",
		"Logon", "Logoff", "Authentication Ticket", "Service Ticket Request", "Service Ticket Renew", "Preauth"),
	"entity_management": ocsfClass("entity_management", "Entity Management", 3004, 3, "Identity & Access Management",
		"Create", "Read", "Update", "Delete", "Move", "Enroll", "Unenroll", "Enable", "Disable", "Activate",
		"Deactivate", "Suspend", "Resume"),
	"group_management": ocsfClass("group_management", "Group Management", 3006, 3, "Identity & Access Management",
		"Assign Privileges", "Revoke Privileges", "Add User", "Remove User", "Delete", "Create"),
	"api_activity": ocsfClass("api_activity", "API Activity", 6003, 6, "Application Activity",
		"Create", "Read", "Update", "Delete"),
}

// LookupOCSFClass returns the OCSF class named name (snake case), or nil. The result must not
// be modified.
func LookupOCSFClass(name string) *OCSFClass { return ocsfClasses[name] }

// OCSFClassNames returns the names of the classes a mapping may use, sorted.
func OCSFClassNames() []string {
	names := make([]string, 0, len(ocsfClasses))
	for n := range ocsfClasses {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Validate reports what is wrong with m: an unknown class, an activity the class does not
// have, a status other than "" or "failure".
func (m OCSFMapping) Validate() error {
	c := ocsfClasses[m.Class]
	if c == nil {
		return fmt.Errorf("ocsf.class %q must be one of %s", m.Class, strings.Join(OCSFClassNames(), ", "))
	}
	var errs []error
	if _, ok := c.Activities[m.Activity]; !ok {
		names := make([]string, 0, len(c.Activities))
		for a := range c.Activities {
			names = append(names, a)
		}
		slices.Sort(names)
		errs = append(errs, fmt.Errorf("ocsf.activity %q is not an activity of %s; one of %s", m.Activity, m.Class, strings.Join(names, ", ")))
	}
	if m.Status != "" && m.Status != "failure" {
		errs = append(errs, fmt.Errorf("ocsf.status %q must be failure or left out", m.Status))
	}
	return errors.Join(errs...)
}
