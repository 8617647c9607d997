package reconcile

import "context"

// ClusterPlan is the cluster part of a plan: one change per object.
type ClusterPlan struct {
	// Skipped says why the cluster step does not run (no kubeconfig and
	// not in a cluster); empty when it does.
	Skipped string `json:"skipped,omitempty"`
	// Objects are the changes, in the order they would be applied.
	Objects []ObjectChange `json:"objects,omitempty"`
}

// ObjectAction is what the cluster step does to one object, in the terms
// of a Flux change set and kubectl's output.
type ObjectAction string

const (
	ObjectCreate    ObjectAction = "create"
	ObjectConfigure ObjectAction = "configure"
	ObjectUnchanged ObjectAction = "unchanged"
	ObjectDelete    ObjectAction = "delete"
	// ObjectConflict: another manager owns a field Ferry would change.
	ObjectConflict ObjectAction = "conflict"
	// ObjectBreaking: the change would strand a Subscription or
	// ClusterExtension; applied only with AllowBreaking.
	ObjectBreaking ObjectAction = "breaking"
	// ObjectHeld: the catalog's images are not all in the mirror.
	ObjectHeld ObjectAction = "held"
	// ObjectPrunable: owned, no longer rendered, deleted only with Prune.
	ObjectPrunable ObjectAction = "prunable"
)

// ObjectChange is one object of the cluster plan.
type ObjectChange struct {
	Kind      string       `json:"kind"`
	Namespace string       `json:"namespace,omitempty"`
	Name      string       `json:"name"`
	Action    ObjectAction `json:"action"`
	// File is the render-directory file the object comes from.
	File string `json:"file,omitempty"`
	// Catalog is the Catalog a CatalogSource or ClusterCatalog serves.
	Catalog string `json:"catalog,omitempty"`
	// Reasons explain conflicts (field and manager) and breaking changes
	// (which Subscription or ClusterExtension, and why).
	Reasons []string `json:"reasons,omitempty"`
}

// ClusterOutcome is what the cluster step did.
type ClusterOutcome struct {
	Objects []ObjectChange
}

// clusterState is what planning observed of the cluster, kept for Apply.
type clusterState struct{}

// planCluster computes the cluster part of the plan.
func (r *Reconciler) planCluster(ctx context.Context, p *Planned, opts Options) error {
	if r.Cluster == nil {
		p.Plan.Cluster = &ClusterPlan{Skipped: r.ClusterSkipped}
		return nil
	}
	return nil
}

// applyCluster applies the cluster part of the plan in the safe order.
func (r *Reconciler) applyCluster(ctx context.Context, p *Planned, opts Options, out *Outcome) error {
	return nil
}
