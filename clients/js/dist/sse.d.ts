import type { TransportFactory } from './transport.js';
export declare const sseTransport: TransportFactory;
