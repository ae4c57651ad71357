package console

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/corpintel/corpintel/internal/stack"
)

// The data of the live parts of pages: built from a status for the page and again for
// every update of it, so both render through the same fragments.

// attentionItem is one thing that needs attention, most severe first.
type attentionItem struct {
	Level, Text, Link, LinkText string
}

type overviewData struct {
	Status Status
	Err    string
	Level  string
	Items  []attentionItem
	User   *User
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// attention orders what is wrong: down services, then degraded ones, then the rest.
func attention(st Status, err error, now time.Time) (string, []attentionItem) {
	var items []attentionItem
	add := func(level, text, link, linkText string) {
		items = append(items, attentionItem{Level: level, Text: text, Link: link, LinkText: linkText})
	}
	if err != nil {
		add(levelBad, "The stack's state could not be read: "+err.Error(), "", "")
	}
	if st.Stopped {
		add(levelBad, "The stack is stopped (corpintel stop); run `corpintel start` to bring it up.", "", "")
	}
	if st.Maintenance != "" {
		add(levelWarn, "Maintenance: "+st.Maintenance+" is running; the API answers 503 until it ends.", "", "")
	}
	if st.Operation != nil {
		text := st.Operation.Name + " is running"
		if st.Operation.LastStep != "" {
			text += " (step " + st.Operation.LastStep + ")"
		}
		add(levelWarn, text+".", "", "")
	}
	if st.LastError != "" {
		add(levelWarn, "The last reconcile pass failed: "+st.LastError, "", "")
	}
	for _, s := range st.Services {
		link, lt := "/admin/services/"+s.Name, "details"
		switch l := serviceLevel(s); {
		case l == levelBad:
			add(levelBad, fmt.Sprintf("%s is down: %d of %d replicas healthy (%s).", s.Name, s.Healthy, s.Desired, s.State), link, lt)
		case s.Desired == 0:
			add(levelWarn, s.Name+" is scaled to 0.", link, lt)
		case l == levelWarn:
			text := fmt.Sprintf("%s is %s: %d of %d replicas healthy.", s.Name, s.State, s.Healthy, s.Desired)
			if s.Backoff != "" {
				text += " " + s.Backoff
			}
			if s.Held != "" {
				text += " " + s.Held
			}
			add(levelWarn, text, link, lt)
		}
	}
	for _, cert := range st.Certificates {
		left := cert.NotAfter.Sub(now)
		switch {
		case cert.NotAfter.IsZero():
		case left < 3*24*time.Hour:
			add(levelBad, fmt.Sprintf("The certificate for %s expires %s.", cert.Name, relTime(cert.NotAfter, now)), "", "")
		case left < 14*24*time.Hour:
			add(levelWarn, fmt.Sprintf("The certificate for %s expires %s.", cert.Name, relTime(cert.NotAfter, now)), "", "")
		}
		if cert.LastError != "" {
			add(levelWarn, "Certificate renewal for "+cert.Name+" failed: "+cert.LastError, "", "")
		}
	}
	slices.SortStableFunc(items, func(a, b attentionItem) int { return rank(b.Level) - rank(a.Level) })
	level := levelOK
	if len(items) > 0 {
		level = items[0].Level
	}
	return level, items
}

func rank(level string) int {
	switch level {
	case levelBad:
		return 2
	case levelWarn:
		return 1
	}
	return 0
}

func (c *Console) overviewData(st Status, err error, u *User) overviewData {
	level, items := attention(st, err, c.now())
	return overviewData{Status: st, Err: errText(err), Level: level, Items: items, User: u}
}

type servicesData struct {
	Status Status
	Err    string
	User   *User
}

type serviceData struct {
	Name    string
	Service *Service
	Err     string
	User    *User
	// Actions are the service's recent restarts and scales (the page, not the live
	// fragment, lists them).
	Actions []action
}

func serviceDataOf(name string, st Status, err error, u *User) serviceData {
	d := serviceData{Name: name, Err: errText(err), User: u}
	if s, ok := findService(st, name); ok {
		d.Service = &s
	}
	return d
}

type actionData struct {
	Action      action
	HaveService bool
	Healthy     int
	Want        int
	Percent     int
}

func actionDataOf(a action, st Status) actionData {
	d := actionData{Action: a}
	if s, ok := findService(st, a.Service); ok {
		d.HaveService, d.Healthy, d.Want = true, s.Healthy, s.Desired
		if a.Kind == "scale" {
			d.Want = a.To
		}
	}
	switch {
	case a.Done():
		d.Percent = 100
	case d.Want > 0:
		// The operation itself is the first half; healthy replicas the rest.
		d.Percent = min(90, 10*((50+50*min(d.Healthy, d.Want)/d.Want)/10))
	default:
		d.Percent = 50
	}
	return d
}

// liveView returns the fragments of a live page ("overview", "services",
// "service:NAME", "action:ID") for a status.
func (c *Console) liveView(name string, rq *request) (func(Status, error) ([]fragmentEvent, error), error) {
	frag := func(id, tmpl string, data any) (fragmentEvent, error) {
		html, err := c.fragment(tmpl, data)
		return fragmentEvent{ID: id, HTML: html}, err
	}
	build := func(parts ...func() (fragmentEvent, error)) ([]fragmentEvent, error) {
		out := make([]fragmentEvent, 0, len(parts)+1)
		for _, p := range parts {
			f, err := p()
			if err != nil {
				return nil, err
			}
			out = append(out, f)
		}
		f, err := frag("updated", "updated", c.now())
		return append(out, f), err
	}
	kind, arg, _ := strings.Cut(name, ":")
	switch {
	case kind == "overview":
		return func(st Status, err error) ([]fragmentEvent, error) {
			d := c.overviewData(st, err, rq.user)
			return build(func() (fragmentEvent, error) { return frag("attention", "attention", d) },
				func() (fragmentEvent, error) { return frag("service-cards", "service-cards", d) })
		}, nil
	case kind == "services":
		return func(st Status, err error) ([]fragmentEvent, error) {
			d := servicesData{Status: st, Err: errText(err), User: rq.user}
			return build(func() (fragmentEvent, error) { return frag("services-table", "services-table", d) })
		}, nil
	case kind == "service" && stack.IsService(arg):
		return func(st Status, err error) ([]fragmentEvent, error) {
			d := serviceDataOf(arg, st, err, rq.user)
			return build(func() (fragmentEvent, error) { return frag("service-detail", "service-detail", d) })
		}, nil
	case kind == "action":
		if _, ok := c.actions.get(arg); !ok {
			return nil, errorf(404, "No such action.")
		}
		return func(st Status, _ error) ([]fragmentEvent, error) {
			a, _ := c.actions.get(arg)
			return build(func() (fragmentEvent, error) { return frag("action-progress", "action-progress", actionDataOf(a, st)) })
		}, nil
	}
	return nil, errorf(400, "Unknown live view %q.", truncate(name, 64))
}
