package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// ErrNoRoute means the supervisor has no such route (an older or smaller build):
// `corpintel check` reports the feature behind it as not configured.
var ErrNoRoute = errors.New("the supervisor has no such route")

// maxRaw bounds an answer read by GetJSON.
const maxRaw = 16 << 20

// GetJSON returns the JSON answer of a GET route as it is, for readers that decode
// only the fields they know (and tolerate fields that are not there yet).
func (c *Client) GetJSON(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://corpintel"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.explain(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRaw))
	if err != nil {
		return nil, fmt.Errorf("local API %s: read the answer: %w", path, err)
	}
	switch {
	case resp.StatusCode/100 == 2:
		return b, nil
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed:
		return nil, fmt.Errorf("GET %s: %w", path, ErrNoRoute)
	}
	var eb errorBody
	if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
		eb.Error = resp.Status
	}
	if resp.StatusCode == http.StatusBadRequest {
		return nil, &RequestError{Msg: eb.Error}
	}
	return nil, fmt.Errorf("supervisor: %s", eb.Error)
}
