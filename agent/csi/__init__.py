"""The CSI gRPC surface (Identity, Node, Controller stub) served by grpclib on a unix socket."""
