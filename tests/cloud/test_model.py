"""The cluster model itself: what the renderers rely on."""

from __future__ import annotations

from hypothesis import given, settings

from tests.cloud.model import EPHEMERAL_HIGH, EPHEMERAL_LOW, Cluster, clusters


@settings(max_examples=30, deadline=None)
@given(clusters())
def test_connections_are_well_formed(cluster: Cluster) -> None:
    ips = [p.ip for p in cluster.pods] + [n.ip for n in cluster.nodes]
    assert len(ips) == len(set(ips))
    seen: set[tuple[str, int]] = set()
    for c in cluster.connections:
        client, server = cluster.pod(c.client), cluster.pod(c.server)
        # Linux picks the client port from ip_local_port_range (32768-60999), fresh per connection.
        assert EPHEMERAL_LOW <= c.client_port <= EPHEMERAL_HIGH
        assert (client.ip, c.client_port) not in seen
        seen.add((client.ip, c.client_port))
        assert any(p.port == c.server_port and p.protocol == c.protocol for p in server.listens())
        assert c.node_local == (client.node == server.node)
        assert (c.response_packets == 0) == c.denied
