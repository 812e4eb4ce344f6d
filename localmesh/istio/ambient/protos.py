"""The protobuf types the ambient configuration packs into ``Any`` fields, registered with
the descriptor pool by importing them (istiod converts its resources to protobuf)."""

import envoy.extensions.access_loggers.grpc.v3.als_pb2
import envoy.extensions.filters.http.set_filter_state.v3.set_filter_state_pb2
import envoy.extensions.filters.listener.original_dst.v3.original_dst_pb2
import envoy.extensions.transport_sockets.internal_upstream.v3.internal_upstream_pb2  # noqa: F401
