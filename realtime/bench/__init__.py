"""Every benchmark in one place: pose, engines, live, web. Each prints the host it ran on."""
