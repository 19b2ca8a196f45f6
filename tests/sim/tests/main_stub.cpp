/* Criterion provides main(); the suites live in a whole-archive library. */
