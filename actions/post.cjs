'use strict';
// Post step of the ci-cache action (post-if: always()): merge the job's additions and release it.
const { entry, post } = require('./lib.cjs');

entry(() => post());
