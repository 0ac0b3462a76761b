"""targetcli's saveconfig.json: dump the live tree in its exact format, load and validate a
file, and turn (running, desired) into a Plan that changes only what differs."""
