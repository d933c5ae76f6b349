package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// CSVHeader are the columns of the UI's CSV export: GitLab's audit events export's, with the
// event type, then the event's JSON exactly as stored and streamed (the trail's leaf bytes), so
// that an auditor can check every row against the trail (auditstream verify --csv).
var CSVHeader = []string{"ID", "Created At (UTC)", "Event Type", "Author ID", "Author Name", "Author Email", "Entity ID", "Entity Type",
	"Entity Path", "Target ID", "Target Type", "Target Details", "Action", "IP Address", CSVJSONColumn}

// CSVJSONColumn is the name of the export's last column, the event's JSON.
const CSVJSONColumn = "Event JSON"

// CSVRecord returns an export's row of an event from its JSON ({"id":N,…}, as stored): the
// visible columns derived from the JSON alone, values a spreadsheet would run as a formula
// defused (CSVCell), then the JSON itself, unchanged (it starts with '{', never a formula).
// The same function makes the export and checks it, so the two cannot drift.
func CSVRecord(data []byte) ([]string, error) {
	var ev struct {
		ID         json.Number `json:"id"`
		CreatedAt  string      `json:"created_at"`
		EventType  string      `json:"event_type"`
		AuthorID   json.Number `json:"author_id"`
		EntityID   json.Number `json:"entity_id"`
		EntityType string      `json:"entity_type"`
		displayJSON
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(&ev); err != nil {
		return nil, fmt.Errorf("the event's JSON: %w", err)
	}
	num := func(n json.Number) string {
		if n == "" {
			return "0"
		}
		return n.String()
	}
	created := ev.CreatedAt
	if t, err := time.Parse(time.RFC3339Nano, created); err == nil {
		created = t.UTC().Format(TimeLayout)
	}
	s := ev.display()
	return []string{num(ev.ID), created, ev.EventType, num(ev.AuthorID), CSVCell(s.AuthorName), CSVCell(s.AuthorEmail),
		num(ev.EntityID), CSVCell(ev.EntityType), CSVCell(s.EntityPath), CSVCell(s.TargetID), CSVCell(s.TargetType),
		CSVCell(s.TargetDetails), CSVCell(s.Action), CSVCell(s.IPAddress), string(data)}, nil
}

// Display is what the UI shows of an event beyond the store's columns, read from its JSON: the
// author's name and the IP address fall back to the details' (as GitLab's do), the author's
// email is the details', the target id is unquoted, and Action says what the event did.
type Display struct {
	AuthorName, AuthorEmail, EntityPath, TargetID, TargetType, TargetDetails, IPAddress, Action string
}

// DisplayOf reads what the UI shows of an event from its JSON; of an event that does not decode,
// what did.
func DisplayOf(data []byte) Display {
	var j displayJSON
	_ = json.Unmarshal(data, &j)
	return j.display()
}

// displayJSON is the part of an event's JSON Display is made of.
type displayJSON struct {
	AuthorName    string                     `json:"author_name"`
	EntityPath    string                     `json:"entity_path"`
	TargetID      json.RawMessage            `json:"target_id"`
	TargetType    string                     `json:"target_type"`
	TargetDetails string                     `json:"target_details"`
	IPAddress     string                     `json:"ip_address"`
	Details       map[string]json.RawMessage `json:"details"`
}

func (j *displayJSON) display() Display {
	detail := func(k string) string {
		var s string
		if json.Unmarshal(j.Details[k], &s) != nil {
			return strings.Trim(string(j.Details[k]), `"`)
		}
		return s
	}
	d := Display{AuthorName: j.AuthorName, AuthorEmail: detail("author_email"), EntityPath: j.EntityPath,
		TargetType: j.TargetType, TargetDetails: j.TargetDetails, IPAddress: j.IPAddress, Action: Action(detail)}
	if t := string(j.TargetID); t != "null" && t != "" {
		d.TargetID = strings.Trim(t, `"`)
	}
	if d.AuthorName == "" {
		d.AuthorName = detail("author_name")
	}
	if d.IPAddress == "" {
		d.IPAddress = detail("ip_address")
	}
	return d
}

// CSVCell defuses a value a spreadsheet would run as a formula (OWASP's CSV injection advice):
// one that starts with =, +, -, @, tab or carriage return gets a leading apostrophe.
func CSVCell(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

// Action is what an event did, in words, from its details (detail returns a key's value as
// text, "" when absent): its custom_message, else GitLab's add/remove/change keys, else its
// event_name.
func Action(detail func(string) string) string {
	if m := detail("custom_message"); m != "" {
		return m
	}
	if v := detail("add"); v != "" {
		return "Added " + v
	}
	if v := detail("remove"); v != "" {
		return "Removed " + v
	}
	if v := detail("change"); v != "" {
		msg := "Changed " + v
		if from := detail("from"); from != "" {
			msg += " from " + from
		}
		if to := detail("to"); to != "" {
			msg += " to " + to
		}
		return msg
	}
	return detail("event_name")
}
