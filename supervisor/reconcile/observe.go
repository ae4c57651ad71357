package reconcile

import (
	"context"
	"fmt"
	"strconv"

	"github.com/corpintel/corpintel/internal/docker"
	"github.com/corpintel/corpintel/internal/stack"
)

// observeEngine is the reading half of Engine.
type observeEngine interface {
	ListContainers(ctx context.Context, labels map[string]string) ([]docker.Container, error)
	ListNetworks(ctx context.Context, labels map[string]string) ([]string, error)
	ListVolumes(ctx context.Context, labels map[string]string) ([]string, error)
}

// Observe reads the project's network, volumes and containers from the engine by the
// project label only; it is the one place that reads Docker state. The facts of the
// state store (jobs done, backoffs, holds, owners) are the caller's to add.
func Observe(ctx context.Context, eng observeEngine, project string) (Observed, error) {
	network := stack.NetworkName(project)
	sel := map[string]string{stack.LabelProject: project}
	obs := Observed{Volumes: map[string]bool{}}
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
	replica, _ := strconv.Atoi(c.Labels[stack.LabelReplica])
	o := ObservedContainer{
		ID:           c.ID,
		Name:         c.Name,
		Project:      c.Labels[stack.LabelProject],
		Service:      c.Labels[stack.LabelService],
		Replica:      replica,
		Job:          c.Labels[stack.LabelJob],
		Hash:         c.Labels[stack.LabelConfigHash],
		Image:        c.ImageID,
		ImageRef:     c.Image,
		State:        c.State,
		Health:       c.Health,
		ExitCode:     c.ExitCode,
		RestartCount: c.RestartCount,
		StartedAt:    c.StartedAt,
		IP:           c.IPs[network],
	}
	for _, m := range c.Mounts {
		if m.Type == "bind" {
			o.BindSources = append(o.BindSources, m.Source)
		}
	}
	return o
}
