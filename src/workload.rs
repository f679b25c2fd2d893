//! Reading a recorded workload: one mutation per line of JSON.
