import type { TransportFactory } from './transport.js';
export declare const pollingTransport: TransportFactory;
