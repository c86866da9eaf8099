// PLACEHOLDER: replaced by the real kernel (see kernels/index.ts for the contract).
export function quantizeRowsQ5_0(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void { unreachable(); }
export function dequantizeQ5_0(src: usize, dst: usize, k: i32): void { unreachable(); }
