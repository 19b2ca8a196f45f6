/* test_nccl.cu: the NCCL subset over virtual devices (ctest sets
 * EMBSIM_DEVICES=4): one thread driving all ranks inside a group, one thread
 * per rank, and the usage error real NCCL would hang on. */
#include "helpers.h"

#include <nccl.h>

#include <thread>

static int device_count()
{
    int n = 0;
    cudaGetDeviceCount(&n);
    return n;
}

Test(nccl, all_reduce_from_one_thread_in_a_group)
{
    int n = device_count();
    cr_assert(n >= 1);
    std::vector<ncclComm_t> comms(static_cast<size_t>(n));
    cr_assert_eq(ncclCommInitAll(comms.data(), n, nullptr), ncclSuccess);
    const size_t count = 37;
    std::vector<float *> buf(static_cast<size_t>(n));
    std::vector<cudaStream_t> streams(static_cast<size_t>(n));
    for (int r = 0; r < n; r++) {
        CUDA_OK(cudaSetDevice(r));
        CUDA_OK(cudaStreamCreate(&streams[static_cast<size_t>(r)]));
        CUDA_OK(cudaMalloc(reinterpret_cast<void **>(&buf[static_cast<size_t>(r)]), count * sizeof(float)));
        std::vector<float> h(count);
        for (size_t i = 0; i < count; i++)
            h[i] = static_cast<float>(r + 1) * static_cast<float>(i);
        CUDA_OK(cudaMemcpy(buf[static_cast<size_t>(r)], h.data(), count * sizeof(float), cudaMemcpyHostToDevice));
    }
    cr_assert_eq(ncclGroupStart(), ncclSuccess);
    for (int r = 0; r < n; r++)
        cr_assert_eq(ncclAllReduce(buf[static_cast<size_t>(r)], buf[static_cast<size_t>(r)], count, ncclFloat32, ncclSum,
                                   comms[static_cast<size_t>(r)], streams[static_cast<size_t>(r)]),
                     ncclSuccess);
    cr_assert_eq(ncclGroupEnd(), ncclSuccess);
    float ranks_sum = static_cast<float>(n * (n + 1) / 2);
    for (int r = 0; r < n; r++) {
        CUDA_OK(cudaSetDevice(r));
        CUDA_OK(cudaStreamSynchronize(streams[static_cast<size_t>(r)]));
        std::vector<float> h(count);
        CUDA_OK(cudaMemcpy(h.data(), buf[static_cast<size_t>(r)], count * sizeof(float), cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < count; i++)
            cr_assert_eq(h[i], ranks_sum * static_cast<float>(i), "rank %d element %zu", r, i);
        CUDA_OK(cudaFree(buf[static_cast<size_t>(r)]));
        CUDA_OK(cudaStreamDestroy(streams[static_cast<size_t>(r)]));
        ncclCommDestroy(comms[static_cast<size_t>(r)]);
    }
}

/* One thread per rank: broadcast, all-gather and a send/recv ring. */
Test(nccl, ranks_as_threads)
{
    int n = device_count();
    ncclUniqueId id;
    cr_assert_eq(ncclGetUniqueId(&id), ncclSuccess);
    const size_t count = 5;
    std::vector<std::vector<int>> gathered(static_cast<size_t>(n)), bcast(static_cast<size_t>(n)), ring(static_cast<size_t>(n));
    std::vector<int> status(static_cast<size_t>(n), -1);
    std::vector<std::thread> threads;
    for (int r = 0; r < n; r++)
        threads.emplace_back([&, r] {
            cudaSetDevice(r);
            ncclComm_t comm;
            if (ncclCommInitRank(&comm, n, id, r) != ncclSuccess)
                return;
            int *send, *all, *b, *recv;
            cudaMalloc(reinterpret_cast<void **>(&send), count * sizeof(int));
            cudaMalloc(reinterpret_cast<void **>(&all), count * sizeof(int) * static_cast<size_t>(n));
            cudaMalloc(reinterpret_cast<void **>(&b), count * sizeof(int));
            cudaMalloc(reinterpret_cast<void **>(&recv), count * sizeof(int));
            std::vector<int> h(count);
            for (size_t i = 0; i < count; i++)
                h[i] = r * 100 + static_cast<int>(i);
            cudaMemcpy(send, h.data(), count * sizeof(int), cudaMemcpyHostToDevice);
            cudaStream_t s;
            cudaStreamCreate(&s);
            ncclResult_t e1 = ncclAllGather(send, all, count, ncclInt32, comm, s);
            ncclResult_t e2 = ncclBroadcast(send, b, count, ncclInt32, n - 1, comm, s);
            ncclGroupStart();
            ncclResult_t e3 = ncclSend(send, count, ncclInt32, (r + 1) % n, comm, s);
            ncclResult_t e4 = ncclRecv(recv, count, ncclInt32, (r + n - 1) % n, comm, s);
            ncclGroupEnd();
            cudaStreamSynchronize(s);
            gathered[static_cast<size_t>(r)].resize(count * static_cast<size_t>(n));
            bcast[static_cast<size_t>(r)].resize(count);
            ring[static_cast<size_t>(r)].resize(count);
            cudaMemcpy(gathered[static_cast<size_t>(r)].data(), all, count * sizeof(int) * static_cast<size_t>(n), cudaMemcpyDeviceToHost);
            cudaMemcpy(bcast[static_cast<size_t>(r)].data(), b, count * sizeof(int), cudaMemcpyDeviceToHost);
            cudaMemcpy(ring[static_cast<size_t>(r)].data(), recv, count * sizeof(int), cudaMemcpyDeviceToHost);
            status[static_cast<size_t>(r)] = e1 | e2 | e3 | e4;
            cudaStreamDestroy(s);
            cudaFree(send);
            cudaFree(all);
            cudaFree(b);
            cudaFree(recv);
            ncclCommDestroy(comm);
        });
    for (auto &t : threads)
        t.join();
    for (int r = 0; r < n; r++) {
        cr_assert_eq(status[static_cast<size_t>(r)], 0, "rank %d", r);
        for (int j = 0; j < n; j++)
            for (size_t i = 0; i < count; i++)
                cr_assert_eq(gathered[static_cast<size_t>(r)][static_cast<size_t>(j) * count + i], j * 100 + static_cast<int>(i));
        for (size_t i = 0; i < count; i++) {
            cr_assert_eq(bcast[static_cast<size_t>(r)][i], (n - 1) * 100 + static_cast<int>(i));
            cr_assert_eq(ring[static_cast<size_t>(r)][i], ((r + n - 1) % n) * 100 + static_cast<int>(i));
        }
    }
}

Test(nccl, one_thread_two_ranks_outside_a_group_is_an_error)
{
    int n = device_count();
    if (n < 2)
        cr_skip_test("needs EMBSIM_DEVICES >= 2");
    embsim_set_record_errors(1);
    std::vector<ncclComm_t> comms(static_cast<size_t>(n));
    cr_assert_eq(ncclCommInitAll(comms.data(), n, nullptr), ncclSuccess);
    std::vector<float *> buf(2);
    for (int r = 0; r < 2; r++) {
        cudaSetDevice(r);
        cudaMalloc(reinterpret_cast<void **>(&buf[static_cast<size_t>(r)]), 16);
    }
    cr_assert_eq(ncclAllReduce(buf[0], buf[0], 4, ncclFloat32, ncclSum, comms[0], nullptr), ncclSuccess);
    cr_assert_eq(ncclAllReduce(buf[1], buf[1], 4, ncclFloat32, ncclSum, comms[1], nullptr), ncclInvalidUsage);
    cr_assert_eq(embsim_errors_matching("outside ncclGroupStart/ncclGroupEnd"), 1, "%s", embsim_first_error());
}
