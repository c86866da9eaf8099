// PLACEHOLDER: replaced by the real kernel (see kernels/index.ts for the contract).
export function quantizeRowsQ2_K(src: usize, dst: usize, nrows: i32, ncols: i32, imatrix: usize): void { unreachable(); }
export function dequantizeQ2_K(src: usize, dst: usize, k: i32): void { unreachable(); }
