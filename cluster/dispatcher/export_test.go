package dispatcher

// NetIndexBuilds is how many network indexes the dispatcher has built.
func (d *Dispatcher) NetIndexBuilds() uint64 { return d.netIndexes.builds.Load() }
