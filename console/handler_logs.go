package console

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/corpintel/corpintel/internal/stack"
)

type logsData struct {
	Service     string
	Query       string
	Tail        int
	TailChoices []int
	Lines       []logLine
	Cut         int
	MaxLine     int
	Err         string
}

var tailChoices = []int{100, 200, 500, 1000}

// serveLogs shows the last lines of a service's log (per container), filtered; the
// page's script follows new lines over the stream route.
func serveLogs(c *Console, w http.ResponseWriter, r *http.Request, rq *request) error {
	name := r.PathValue("service")
	if !stack.IsService(name) {
		return errorf(http.StatusNotFound, "There is no service %q.", truncate(name, 64))
	}
	q := r.URL.Query()
	d := logsData{Service: name, Query: strings.TrimSpace(q.Get("q")), Tail: 200, TailChoices: tailChoices, MaxLine: maxLine}
	if t := q.Get("tail"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || !slices.Contains(tailChoices, n) {
			return c.render(w, r, rq, http.StatusUnprocessableEntity, "logs", view{Title: "Log of " + name, Nav: "services",
				Error: "Lines must be one of 100, 200, 500 or 1000.", Data: d})
		}
		d.Tail = n
	}
	d.Query = truncate(d.Query, 200)
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	// Keep the newest lines only: several containers each give Tail lines.
	keep := d.Tail * 4
	sp := newLineSplitter(maxLine, func(l logLine) error {
		if !matches(l.Text, d.Query) {
			return nil
		}
		if l.Cut > 0 {
			d.Cut++
		}
		d.Lines = append(d.Lines, l)
		if len(d.Lines) > keep {
			d.Lines = slices.Delete(d.Lines, 0, len(d.Lines)-keep)
		}
		return nil
	})
	err := c.opts.Ops.Logs(ctx, name, d.Tail, false, sp)
	_ = sp.Flush()
	if err != nil {
		d.Err = "The log could not be read completely: " + err.Error()
	}
	return c.render(w, r, rq, http.StatusOK, "logs", view{Title: "Log of " + name, Nav: "services", Data: d})
}
