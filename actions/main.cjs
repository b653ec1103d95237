'use strict';
// Main step of the ci-cache action: make ci-cache available and set up this job's caches.
const { entry, main } = require('./lib.cjs');

entry(() => main());
