/** The key of the message a generation worker posts once it has loaded its code and the Envoy protos. */
export const WORKER_LOADED = 'meshpilotWorkerLoaded';
