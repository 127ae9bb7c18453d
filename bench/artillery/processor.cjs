// Ends every virtual user's loop DURATION seconds (default 20) after the first check.
let deadline = 0;
module.exports = {
  notDone(context, next) {
    const now = Date.now();
    if (deadline === 0) deadline = now + 1000 * Number(process.env.DURATION || 20);
    return next(now < deadline);
  },
};
