package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// TierStatus is what the metrics and alerts need per tier:
// corpintel_backup_last_success_timestamp_seconds{tier} and
// corpintel_backup_last_failure_timestamp_seconds{tier}.
type TierStatus struct {
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"` // start of the newest verified backup
	LastFailure time.Time `json:"last_failure,omitzero"` // a failed or unverified run
	LastError   string    `json:"last_error,omitempty"`
	LastBackup  string    `json:"last_backup,omitempty"` // tier/name of the newest verified backup
}

// recordStatus updates <root>/.status.json after a run. A failure to write it (a full
// disk) is logged: the run's own error already says what went wrong.
func (r *Runner) recordStatus(root *os.Root, tier string, start time.Time, res *Result, runErr error) {
	all, err := readStatus(root)
	if err != nil {
		r.log.Warn("backup status unreadable; starting it afresh", "err", err)
		all = map[string]TierStatus{}
	}
	st := all[tier]
	st.LastAttempt = start
	if runErr == nil && res != nil && res.Verified {
		st.LastSuccess, st.LastBackup = start, tier+"/"+res.Manifest.Name
	} else {
		st.LastFailure = r.now()
		if runErr != nil {
			st.LastError = runErr.Error()
		}
	}
	all[tier] = st
	b, err := json.MarshalIndent(all, "", "  ")
	if err == nil {
		err = writeFileAtomic(root, statusFile, append(b, '\n'))
	}
	if err != nil {
		r.log.Error("record backup status", "tier", tier, "err", err)
	}
}

func readStatus(root *os.Root) (map[string]TierStatus, error) {
	all := map[string]TierStatus{}
	fi, err := root.Lstat(statusFile)
	if errors.Is(err, fs.ErrNotExist) {
		return all, nil
	}
	if err != nil {
		return all, err
	}
	if !fi.Mode().IsRegular() {
		return all, fmt.Errorf("%s is not a regular file", statusFile)
	}
	f, err := root.Open(statusFile)
	if err != nil {
		return all, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return all, err
	}
	if err := json.Unmarshal(b, &all); err != nil {
		return map[string]TierStatus{}, fmt.Errorf("%s: %w", statusFile, err)
	}
	return all, nil
}

// Status returns the status per tier. LastSuccess is also derived from the backups on
// disk (the newest good one), so it stays right when the status file was lost.
func Status(root string) (map[string]TierStatus, error) {
	r, err := os.OpenRoot(root)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]TierStatus{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("backup: open root %s: %w", root, err)
	}
	defer r.Close()
	all, err := readStatus(r)
	if err != nil {
		all = map[string]TierStatus{}
	}
	infos, err := list(r, root)
	if err != nil {
		return nil, err
	}
	for _, i := range infos {
		if !i.Good() {
			continue
		}
		st := all[i.Tier]
		if i.Time.After(st.LastSuccess) || st.LastBackup == "" {
			if i.Time.After(st.LastSuccess) {
				st.LastSuccess = i.Time
			}
			st.LastBackup = i.rel()
		}
		all[i.Tier] = st
	}
	return all, nil
}
