export class SwitchboardError extends Error {
    constructor(code, message, details) {
        super(message);
        this.name = 'SwitchboardError';
        this.code = code;
        if (details !== undefined)
            this.details = details;
    }
}
