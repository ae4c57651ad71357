package supervisor

import (
	"context"
	"fmt"
	"strconv"

	"github.com/corpintel/corpintel/internal/docker"
)

// Observe reads the project's network, volumes and containers from the engine by the
// project label only; it is the one place that reads Docker state. jobsDone comes from
// the state store.
func Observe(ctx context.Context, eng Engine, project, network string, jobsDone map[string]bool) (Observed, error) {
	sel := map[string]string{LabelProject: project}
	obs := Observed{Volumes: map[string]bool{}, JobsDone: jobsDone}
	nets, err := eng.ListNetworks(ctx, sel)
	if err != nil {
		return Observed{}, fmt.Errorf("observe: %w", err)
	}
	for _, n := range nets {
		obs.NetworkExists = obs.NetworkExists || n == network
	}
	vols, err := eng.ListVolumes(ctx, sel)
	if err != nil {
		return Observed{}, fmt.Errorf("observe: %w", err)
	}
	for _, v := range vols {
		obs.Volumes[v] = true
	}
	cs, err := eng.ListContainers(ctx, sel)
	if err != nil {
		return Observed{}, fmt.Errorf("observe: %w", err)
	}
	for _, c := range cs {
		obs.Containers = append(obs.Containers, observedFrom(c, network))
	}
	return obs, nil
}

func observedFrom(c docker.Container, network string) ObservedContainer {
	replica, _ := strconv.Atoi(c.Labels[LabelReplica])
	return ObservedContainer{
		ID:           c.ID,
		Name:         c.Name,
		Project:      c.Labels[LabelProject],
		Service:      c.Labels[LabelService],
		Replica:      replica,
		Job:          c.Labels[LabelJob],
		Hash:         c.Labels[LabelConfigHash],
		Image:        c.ImageID,
		State:        c.State,
		Health:       c.Health,
		ExitCode:     c.ExitCode,
		RestartCount: c.RestartCount,
		StartedAt:    c.StartedAt,
		IP:           c.IPs[network],
	}
}
