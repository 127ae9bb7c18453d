/** Shapes of the protocol's messages as the client hands them to the app (docs/protocol.md). */
export {};
