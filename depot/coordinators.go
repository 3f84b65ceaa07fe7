package depot

// placeholder
var bucketCoordinators = []byte("coordinators")
