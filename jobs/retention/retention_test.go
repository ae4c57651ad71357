package retention

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden plans in testdata/")

var now = time.Date(2026, 12, 6, 3, 30, 0, 0, time.UTC)

// bk builds a complete, readable, verified backup of tier taken ago before now.
func bk(tier string, ago time.Duration, blobs ...string) Backup {
	t := now.Add(-ago)
	return Backup{Tier: tier, Name: t.Format("20060102_150405"), Time: t, Complete: true, Readable: true, Verified: true, Blobs: blobs}
}

func with(b Backup, f func(*Backup)) Backup { f(&b); return b }

func TestDecideGolden(t *testing.T) {
	bad := func(b *Backup) { b.Verified = false }
	tests := []struct {
		name   string
		in     Input
		policy Policy
	}{
		{
			name: "seed tiers",
			in: Input{Now: now, Backups: []Backup{
				bk("daily", 10*Day, "aa"), bk("daily", 8*Day, "aa", "bb"), bk("daily", 6*Day, "bb"), bk("daily", 1*Day, "bb", "cc"),
				bk("weekly", 35*Day, "old"), bk("weekly", 29*Day, "bb"), bk("monthly", 400*Day, "ancient"), bk("monthly", 30*Day, "bb"),
			}, Blobs: []string{"aa", "bb", "cc", "old", "ancient", "orphan"}},
			policy: DefaultPolicy(),
		},
		{
			name: "newest good is kept however old",
			in: Input{Now: now, Backups: []Backup{
				bk("daily", 40*Day, "a"), with(bk("daily", 20*Day, "b"), bad), with(bk("daily", 9*Day, "c"), bad),
			}, Blobs: []string{"a", "b", "c"}},
			policy: DefaultPolicy(),
		},
		{
			name: "pinned and unreadable survive",
			in: Input{Now: now, Backups: []Backup{
				with(bk("daily", 100*Day, "p"), func(b *Backup) { b.Pinned = true }),
				with(bk("daily", 90*Day), func(b *Backup) { b.Readable = false }),
				bk("daily", 80*Day, "x"), bk("daily", 1*Day, "y"),
			}, Blobs: []string{"p", "x", "y", "z"}},
			policy: DefaultPolicy(),
		},
		{
			name: "a partial holds objects back",
			in: Input{Now: now, Backups: []Backup{
				bk("daily", 9*Day, "x"), bk("daily", 1*Day, "y"),
				with(bk("daily", 0), func(b *Backup) { b.Complete, b.Readable, b.Verified, b.Name = false, false, false, ".partial-x" }),
			}, Blobs: []string{"x", "y", "new"}},
			policy: DefaultPolicy(),
		},
		{
			name: "clock set back deletes nothing",
			in: Input{Now: now.Add(-30 * Day), Backups: []Backup{
				bk("daily", 40*Day, "a"), bk("daily", 10*Day, "b"), bk("daily", 1*Day, "c"),
			}, Blobs: []string{"a", "b", "c", "orphan"}},
			policy: DefaultPolicy(),
		},
		{
			name: "configured periods and a tier without one",
			in: Input{Now: now, Backups: []Backup{
				bk("daily", 3*Day, "a"), bk("daily", 1*Day, "b"), bk("hourly", 500*Day, "c"), bk("hourly", 400*Day),
			}, Blobs: []string{"a", "b", "c"}},
			policy: Policy{Keep: map[string]time.Duration{"daily": 2 * Day}},
		},
		{
			name:   "empty root",
			in:     Input{Now: now},
			policy: DefaultPolicy(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(tt.in, tt.policy).String()
			path := filepath.Join("testdata", strings.ReplaceAll(tt.name, " ", "_")+".golden")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("plan differs from %s:\n--- got\n%s--- want\n%s", path, got, want)
			}
		})
	}
}

// Properties that must hold for any input, checked over many generated ones.
func TestDecideInvariants(t *testing.T) {
	tiers := []string{"daily", "weekly", "monthly"}
	for seed := 0; seed < 500; seed++ {
		var in Input
		in.Now = now
		for i := 0; i < seed%17; i++ {
			b := bk(tiers[(seed+i)%3], time.Duration((seed*7+i*13)%500)*Day, "s"+string(rune('a'+i%5)))
			b.Verified = (seed+i)%4 != 0
			b.Pinned = (seed+i)%11 == 0
			b.Readable = (seed+i)%13 != 0
			b.Complete = (seed+i)%19 != 0
			in.Backups = append(in.Backups, b)
		}
		in.Blobs = []string{"sa", "sb", "sc", "sd", "se", "sz"}
		p := Decide(in, DefaultPolicy())
		del := map[string]bool{}
		for _, d := range p.Delete {
			del[d.Backup] = true
		}
		newest := map[string]Backup{}
		for _, b := range in.Backups {
			if b.Complete && b.Readable && b.Verified && b.Time.After(newest[b.Tier].Time) {
				newest[b.Tier] = b
			}
		}
		for _, b := range in.Backups {
			if !del[b.ID()] {
				continue
			}
			if b.Pinned || !b.Complete || !b.Readable || newest[b.Tier].ID() == b.ID() {
				t.Fatalf("seed %d: deleted %+v\n%s", seed, b, p)
			}
			if now.Sub(b.Time) <= DefaultPolicy().Keep[b.Tier] {
				t.Fatalf("seed %d: deleted unexpired %+v", seed, b)
			}
		}
		kept := map[string]bool{}
		for _, b := range in.Backups {
			if !del[b.ID()] {
				for _, s := range b.Blobs {
					kept[s] = true
				}
			}
		}
		for _, s := range p.DeleteBlobs {
			if kept[s] {
				t.Fatalf("seed %d: deleted blob %s a kept backup references", seed, s)
			}
		}
		if len(p.Delete)+len(p.Keep) != len(in.Backups) || len(p.DeleteBlobs)+p.KeptBlobs != len(in.Blobs) {
			t.Fatalf("seed %d: plan does not account for everything", seed)
		}
	}
}

func TestDays(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0h", 5 * time.Hour: "5h", 2 * Day: "2d", 2*Day + 3*time.Hour: "2d3h"} {
		if got := days(d); got != want {
			t.Errorf("days(%v) = %q, want %q", d, got, want)
		}
	}
}
