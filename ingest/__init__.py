"""Getting footage off recorders: dock daemon, recorder profiles (`devices/`), transcoding (`transcode/`)."""
