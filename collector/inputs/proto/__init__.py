"""Generated protobuf classes of the inputs' protocols (see each .proto for how)."""
