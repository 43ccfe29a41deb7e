package etcd

import "github.com/vigil-alerts/vigil/model"

// MemberLabels are carried by every sample of a member that answered:
// its name in the cluster, for segmenting by member name.
var MemberLabels = []string{"etcd.member.name"}

// StatusMetrics are what every collection of a member gives from its gRPC
// Maintenance.Status and Cluster.MemberList.
var StatusMetrics = []model.MetricInfo{
	{Name: "etcd.can_connect", Kind: model.Gauge, Unit: "1/0", Doc: "Status answered within the timeout"},
	{Name: "etcd.latency", Kind: model.Gauge, Unit: "seconds", Doc: "round trip of the Status call"},
	{Name: "etcd.is_leader", Kind: model.Gauge, Unit: "1/0", Doc: "`Status.leader == header.member_id`"},
	{Name: "etcd.leader.id", Kind: model.Gauge, Unit: "ID as float (lossy); label `leader` = exact hex ID", Labels: []string{"leader"},
		Doc: "`Status.leader` — a change of the label is a leader change; `0` means no leader known"},
	{Name: "etcd.member.id", Kind: model.Gauge, Unit: "ID as float (lossy); label `member` = exact hex ID", Labels: []string{"member"},
		Doc: "`Status.header.member_id`"},
	{Name: "etcd.is_learner", Kind: model.Gauge, Unit: "1/0", Doc: "`Status.isLearner`"},
	{Name: "etcd.raft.term", Kind: model.Counter, Unit: "count", Doc: "`Status.raftTerm`"},
	{Name: "etcd.raft.index", Kind: model.Counter, Unit: "count", Doc: "`Status.raftIndex` (committed)"},
	{Name: "etcd.raft.applied_index", Kind: model.Counter, Unit: "count", Doc: "`Status.raftAppliedIndex`"},
	{Name: "etcd.db.size", Kind: model.Gauge, Unit: "bytes", Doc: "`Status.dbSize` (physically allocated)"},
	{Name: "etcd.db.size_in_use", Kind: model.Gauge, Unit: "bytes", Doc: "`Status.dbSizeInUse` (logically used)"},
	{Name: "etcd.db.quota", Kind: model.Gauge, Unit: "bytes", Doc: "`Status.dbSizeQuota` (etcd ≥ 3.6), else `etcd_server_quota_backend_bytes`"},
	{Name: "etcd.db.quota_used_ratio", Kind: model.Gauge, Unit: "ratio 0..1", Doc: "`etcd.db.size / etcd.db.quota`"},
	{Name: "etcd.alarms", Kind: model.Gauge, Unit: "count", Doc: "`len(Status.errors)` (e.g. `NOSPACE` alarms)"},
	{Name: "etcd.members", Kind: model.Gauge, Unit: "count", Doc: "`len(MemberList.members)`"},
	{Name: "etcd.learners", Kind: model.Gauge, Unit: "count", Doc: "members with `isLearner`"},
}

// PageMetrics are what a member's /metrics page gives.
var PageMetrics = []model.MetricInfo{
	{Name: "etcd.has_leader", Kind: model.Gauge, Unit: "1/0", Doc: "`etcd_server_has_leader`"},
	{Name: "etcd.leader.changes", Kind: model.Counter, Unit: "count", Doc: "`etcd_server_leader_changes_seen_total`"},
	{Name: "etcd.proposals.committed", Kind: model.Counter, Unit: "count", Doc: "`etcd_server_proposals_committed_total`"},
	{Name: "etcd.proposals.applied", Kind: model.Counter, Unit: "count", Doc: "`etcd_server_proposals_applied_total`"},
	{Name: "etcd.proposals.pending", Kind: model.Gauge, Unit: "count", Doc: "`etcd_server_proposals_pending`"},
	{Name: "etcd.proposals.failed", Kind: model.Counter, Unit: "count", Doc: "`etcd_server_proposals_failed_total`"},
	{Name: "etcd.txn.total", Kind: model.Counter, Unit: "count", Doc: "`etcd_mvcc_txn_total` — transactions, i.e. compare-and-swap operations (v2's `compareAndSwap*`)"},
	{Name: "etcd.heartbeat.send_failures", Kind: model.Counter, Unit: "count", Doc: "`etcd_server_heartbeat_send_failures_total`"},
	{Name: "etcd.network.active_peers", Kind: model.Gauge, Unit: "count", Doc: "`etcd_network_active_peers`, summed"},
	{Name: "etcd.network.peer_sent_failures", Kind: model.Counter, Unit: "count", Doc: "`etcd_network_peer_sent_failures_total`, summed over peers"},
	{Name: "etcd.leader.latency", Kind: model.Gauge, Unit: "seconds; label `peer` (hex ID)", Labels: []string{"peer"},
		Doc: "mean of `etcd_network_peer_round_trip_time_seconds{To=peer}` over the interval (`_sum`/`_count` deltas)"},
	{Name: "etcd.leader.latency.stddev", Kind: model.Gauge, Unit: "seconds; label `peer`", Labels: []string{"peer"},
		Doc: "standard deviation of the same histogram over the interval, from bucket midpoints (the histogram keeps no squares, so this is approximate)"},
	{Name: "etcd.self.send.bandwidthrate", Kind: model.Gauge, Unit: "bytes/s", Doc: "rate of `etcd_network_peer_sent_bytes_total`, summed over peers"},
	{Name: "etcd.self.recv.bandwidthrate", Kind: model.Gauge, Unit: "bytes/s", Doc: "rate of `etcd_network_peer_received_bytes_total`, summed over peers"},
	{Name: "etcd.self.send.pkgrate", Kind: model.Gauge, Unit: "messages/s", Doc: "rate of `grpc_server_msg_sent_total`, summed"},
	{Name: "etcd.self.recv.pkgrate", Kind: model.Gauge, Unit: "messages/s", Doc: "rate of `grpc_server_msg_received_total`, summed"},
	{Name: "etcd.disk.wal_fsync.mean", Kind: model.Gauge, Unit: "seconds", Doc: "`etcd_disk_wal_fsync_duration_seconds` `_sum`/`_count` over the interval"},
	{Name: "etcd.disk.wal_fsync.p99", Kind: model.Gauge, Unit: "seconds", Doc: "99th percentile of the same histogram over the interval (linear interpolation, as `histogram_quantile`)"},
	{Name: "etcd.disk.backend_commit.mean", Kind: model.Gauge, Unit: "seconds", Doc: "`etcd_disk_backend_commit_duration_seconds`, as above"},
	{Name: "etcd.disk.backend_commit.p99", Kind: model.Gauge, Unit: "seconds", Doc: "as above"},
}
