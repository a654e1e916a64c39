//! The `queue_track` backend (BPF CO-RE). PLACEHOLDER: being written.
